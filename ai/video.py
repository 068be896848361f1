"""Video transfer syntaxes (MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265) decoded with PyAV (FFmpeg).

An ultrasound clip sent as video holds its frames as one bitstream spread over the Pixel Data
fragments (PS3.5 §8.2.5-8.2.8, A.4.5-A.4.7: the Basic Offset Table is empty and a fragment is
no frame). Frames are not independently decodable, so a frame is reached by decoding forward
from the stream's start: ``VideoFrames`` keeps one decoder open and moves it forward, and
starts again only when an earlier frame is asked for. The pipelines read frames in order
(ai.processing caches what it read), so a clip is decoded once.

Colour: the streams are YBR_PARTIAL_420 (limited range, 4:2:0); FFmpeg's swscale converts to
RGB with the stream's own colour description, BT.601 when it has none, as DICOM's
YBR_PARTIAL_420 assumes. PyAV is a maintained binding with FFmpeg in its wheels
(``pip install av``); without it a video clip is "cannot decode", like any other.
"""

from __future__ import annotations

import io
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from pydicom import uid
from pydicom.encaps import generate_frames

from ai.clip import Frame

# Transfer syntax → FFmpeg's demuxer of its elementary stream (tried after FFmpeg's own
# probe, which also recognises a stream wrapped in an MPEG-2 transport or program stream).
_MPEG2, _H264, _HEVC = "mpegvideo", "h264", "hevc"
VIDEO_SYNTAXES: dict[str, str] = {
    uid.MPEG2MPML: _MPEG2,
    uid.MPEG2MPMLF: _MPEG2,
    uid.MPEG2MPHL: _MPEG2,
    uid.MPEG2MPHLF: _MPEG2,
    uid.MPEG4HP41: _H264,
    uid.MPEG4HP41F: _H264,
    uid.MPEG4HP41BD: _H264,
    uid.MPEG4HP41BDF: _H264,
    uid.MPEG4HP422D: _H264,
    uid.MPEG4HP422DF: _H264,
    uid.MPEG4HP423D: _H264,
    uid.MPEG4HP423DF: _H264,
    uid.MPEG4HP42STEREO: _H264,
    uid.MPEG4HP42STEREOF: _H264,
    uid.HEVCMP51: _HEVC,
    uid.HEVCM10P51: _HEVC,
}


class VideoDecodeError(ValueError):
    """The bitstream cannot be decoded into the frames its header announces."""


def is_video(transfer_syntax: str) -> bool:
    return transfer_syntax in VIDEO_SYNTAXES


def decoder_name() -> str:
    """PyAV and the FFmpeg it carries, for the record (ai.clip.Clip.decoder)."""
    try:
        package = f"av {version('av')}"
    except PackageNotFoundError:
        return "av (not installed)"
    import av

    ffmpeg = getattr(av, "ffmpeg_version_info", "")
    return f"{package} (FFmpeg {ffmpeg})" if ffmpeg else package


def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def bitstream(pixel_data: bytes) -> bytes:
    """The video bitstream of encapsulated Pixel Data: every fragment after the (empty) Basic
    Offset Table, in order."""
    return b"".join(generate_frames(pixel_data, number_of_frames=1))


class VideoFrames:
    """A FrameSource over a video bitstream: (rows, columns, 3) uint8 RGB frames."""

    def __init__(
        self, stream: bytes, transfer_syntax: str, frames: int, rows: int, columns: int
    ) -> None:
        if not is_video(transfer_syntax):
            raise VideoDecodeError(f"{transfer_syntax} is not a video transfer syntax")
        self._stream = stream
        self._format = VIDEO_SYNTAXES[transfer_syntax]
        self._frames = frames
        self._shape = (rows, columns)
        self._container: Any = None
        self._decoded: Any = None  # the open decoder's frame iterator
        self._next = 0  # index of the frame the open decoder gives next

    def __len__(self) -> int:
        return self._frames

    def __getitem__(self, index: int) -> Frame:
        if index < 0:
            index += self._frames
        if not 0 <= index < self._frames:
            raise IndexError(f"frame {index} outside 0..{self._frames - 1}")
        if self._decoded is None or index < self._next:
            self._open()
        while True:
            try:
                frame = next(self._decoded)
            except StopIteration:
                held = self._next
                self.close()
                raise VideoDecodeError(
                    f"the video holds {held} frames; its header says {self._frames}"
                ) from None
            except Exception as exc:  # FFmpeg's errors (av.error.*) on a damaged stream
                self.close()
                raise VideoDecodeError(f"video decoding failed: {type(exc).__name__}") from exc
            position = self._next
            self._next += 1
            if position == index:
                return self._rgb(frame)

    def _rgb(self, frame: Any) -> Frame:
        array: Frame = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
        if array.shape[:2] != self._shape:
            raise VideoDecodeError(
                f"video frames are {array.shape[1]}x{array.shape[0]}; the header says "
                f"{self._shape[1]}x{self._shape[0]} (Columns x Rows)"
            )
        return array

    def _open(self) -> None:
        self.close()
        try:
            import av
        except ImportError as exc:
            raise VideoDecodeError("PyAV (pip install av) is not installed") from exc
        errors: list[str] = []
        for hint in (None, self._format):
            try:
                container = av.open(io.BytesIO(self._stream), mode="r", format=hint)
                if not container.streams.video:
                    container.close()
                    raise VideoDecodeError("no video stream")
            except (av.FFmpegError, VideoDecodeError) as exc:
                errors.append(type(exc).__name__)
                continue
            self._container = container
            self._decoded = container.decode(video=0)
            self._next = 0
            return
        raise VideoDecodeError(f"not a readable video stream ({', '.join(errors)})")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._decoded = None
        self._next = 0
