"""Ultrasound clips as video, made by the tests themselves: frames encoded with PyAV (FFmpeg's
libx264, libx265, mpeg2video) and put in a US Multi-frame Image with pydicom's encapsulation,
as a scanner exporting MPEG-4 writes them (PS3.5 §8.2.5-8.2.8: one bitstream, an empty Basic
Offset Table, PhotometricInterpretation YBR_PARTIAL_420)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from pydicom import dcmread, uid
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.tag import Tag


@dataclass(frozen=True)
class Codec:
    syntax: str
    encoder: str  # FFmpeg's
    stream_format: str  # FFmpeg's muxer of the elementary stream
    options: dict[str, str]
    method: str  # LossyImageCompressionMethod (PS3.3 C.7.6.1.1.5)
    storescu_flag: str


H264 = Codec(
    uid.MPEG4HP41,
    "libx264",
    "h264",
    {"crf": "12", "profile": "high", "level": "4.1", "preset": "medium"},
    "ISO_14496_10",
    "-xn",
)
HEVC = Codec(
    uid.HEVCMP51,
    "libx265",
    "hevc",
    {"crf": "12", "x265-params": "log-level=error:level-idc=51", "profile": "main"},
    "ISO_23008_2",
    "-x4",
)
MPEG2 = Codec(
    uid.MPEG2MPML,
    "mpeg2video",
    "mpeg2video",
    {"b": "4M", "maxrate": "8M", "bufsize": "4M"},
    "ISO_13818_2",
    "-xm",
)
CODECS = (H264, HEVC, MPEG2)


def encode(frames: npt.NDArray[np.uint8], codec: Codec, rate: int = 30) -> bytes:
    """(n, rows, columns, 3) RGB frames as the codec's elementary stream (4:2:0)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=codec.stream_format) as out:
        stream = out.add_stream(codec.encoder, rate=rate)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = dict(codec.options)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def moving_pattern(count: int = 8, rows: int = 64, columns: int = 96) -> npt.NDArray[np.uint8]:
    """Smooth colour gradients sliding a few pixels a frame: what a lossy codec keeps well."""
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float64)
    frames = []
    for index in range(count):
        red = 128 + 100 * np.sin((xx + 3 * index) / 9.0)
        green = 128 + 90 * np.cos((yy - 2 * index) / 7.0)
        blue = 60 + 0.8 * xx + index * 4
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def as_video(source: Dataset, frames: npt.NDArray[np.uint8], codec: Codec) -> Dataset:
    """A copy of ``source`` (a US image, any syntax) holding ``frames`` as the codec's video,
    a US Multi-frame Image with the Cine attributes a video needs."""
    ds = source.copy()
    ds.file_meta = source.file_meta.copy()
    count = int(frames.shape[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid.UltrasoundMultiFrameImageStorage
    ds.NumberOfFrames = count
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    if "FrameTime" not in ds:
        ds.FrameTime = "33.3333"
        ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = codec.method
    ds.PixelData = encapsulate([encode(frames, codec)], has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = codec.syntax
    return ds


def video_file(
    source: Path, frames: npt.NDArray[np.uint8], codec: Codec, out: Path, **changes: str
) -> Path:
    ds = as_video(dcmread(source), frames, codec)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=True)
    return out
