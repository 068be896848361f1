"""Single frames from stored files: raw bytes as stored, or rendered to PNG/JPEG.

Only the requested frame is read: native Pixel Data is sliced by offset, encapsulated Pixel
Data is walked with pydicom's fragment parser, so a 500 MB clip is never loaded for one frame.

A video clip (MPEG-2, H.264, HEVC transfer syntaxes) has no frames as stored: its Pixel Data
is one bitstream whose frames depend on each other, and the node does not transcode. Its
frames are answered 406 (VIDEO_FRAMES says what to ask for instead); the instance itself is
served as stored, and /rendered decodes a frame to JPEG or PNG.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import UID

from echo_node.web.errors import WebError
from echo_node.web.render import encode, frame_image, read_header

# Media types of encapsulated frames as stored (PS3.18 Table 8.7.3-2).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
OCTET_STREAM = "application/octet-stream"
VIDEO_FRAMES = (
    "the instance is a video ({name}): its frames are one bitstream, not stored one by one, "
    "and this node does not transcode; retrieve the instance (application/dicom) or a "
    "frame's /rendered image"
)


@dataclass(frozen=True)
class Frame:
    data: bytes
    media_type: str
    transfer_syntax_uid: str


@dataclass(frozen=True)
class FrameInfo:
    count: int
    media_type: str  # of the frames as stored
    transfer_syntax_uid: str


def frame_info(path: Path) -> FrameInfo:
    header = dcmread(path, stop_before_pixels=True)
    syntax = UID(header.file_meta.TransferSyntaxUID)
    media = (
        FRAME_MEDIA_TYPES.get(str(syntax), OCTET_STREAM) if syntax.is_encapsulated else OCTET_STREAM
    )
    return FrameInfo(frame_count(header), media, str(syntax))


def frame_count(header: Dataset) -> int:
    value = header.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1


def read_frame(path: Path, number: int) -> Frame:
    """Frame ``number`` (1-based) as stored; WebError 404 if there is no such frame."""
    with path.open("rb") as handle:
        header = dcmread(handle, stop_before_pixels=True)
        syntax = UID(header.file_meta.TransferSyntaxUID)
        frames = frame_count(header)
        if not 1 <= number <= frames:
            raise WebError(404, f"frame {number} does not exist (the instance has {frames})")
        length = _pixel_data_value(handle, syntax)
        if syntax.is_encapsulated:
            offsets = None
            if "ExtendedOffsetTable" in header:
                offsets = (header.ExtendedOffsetTable, header.ExtendedOffsetTableLengths)
            data = get_frame(handle, number - 1, extended_offsets=offsets, number_of_frames=frames)
            media = FRAME_MEDIA_TYPES.get(str(syntax), OCTET_STREAM)
            return Frame(data, media, str(syntax))
        size = _native_frame_size(header)
        if size * frames > length:
            raise WebError(404, "the stored Pixel Data is shorter than its frames")
        handle.seek(size * (number - 1), io.SEEK_CUR)
        return Frame(handle.read(size), OCTET_STREAM, str(syntax))


def _pixel_data_value(handle: BinaryIO, syntax: UID) -> int:
    """Move ``handle`` from the Pixel Data tag to its value; returns the value length."""
    little = "<" if syntax.is_little_endian else ">"
    tag = handle.read(4)
    if len(tag) < 4:
        raise WebError(404, "the instance has no Pixel Data")
    group, element = struct.unpack(f"{little}HH", tag)
    if (group, element) != (0x7FE0, 0x0010):
        raise WebError(404, "the instance has no Pixel Data")
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(f"{little}L", handle.read(4))
    else:
        handle.read(4)  # VR and two reserved bytes: OB/OW always use the 4-byte length form
        (length,) = struct.unpack(f"{little}L", handle.read(4))
    return int(length)


def _native_frame_size(header: Dataset) -> int:
    bits = int(header.BitsAllocated)
    pixels = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
    if bits == 1:
        raise WebError(406, "frames of 1-bit Pixel Data are not served")
    size = pixels * bits // 8
    # YBR_FULL_422 native data holds two samples per pixel, not three (PS3.5 §8.2.1).
    if header.get("PhotometricInterpretation") == "YBR_FULL_422":
        size = size * 2 // 3
    return size


def render_frame(path: Path, number: int, media_type: str) -> bytes:
    """Frame ``number`` as an 8-bit PNG or JPEG (quality 90), full size."""
    return encode(frame_image(path, read_header(path), number), media_type, 90)
