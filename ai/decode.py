"""DICOM ultrasound instance → ai.clip.Clip, frames decoded one at a time on demand.

Colour rules (one place, so every pipeline sees the same pixels):

- YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT → RGB. pydicom ≥ 3 converts YBR to RGB by default;
  we ask for it explicitly (``as_rgb=True``) so a change of default cannot give YBR to a model
  trained on RGB. (pydicom 2 returned raw YBR; code written against it expected YBR.)
- PALETTE COLOR → RGB through the palette (pydicom's ``apply_color_lut``). A 16-bit palette maps
  to uint8 as ``round(v × 255 / 65535)``.
- MONOCHROME1 / MONOCHROME2 → the same grey value in R, G and B; MONOCHROME1 is inverted so that
  bright always means strong echo.
- Stored values wider than 8 bits (monochrome or RGB) → uint8 by a fixed linear rule over the
  stored range, ``round(v × 255 / (2**BitsStored − 1))`` (signed data first shifted by
  ``2**(BitsStored−1)``). No per-frame min–max stretch: it would make brightness flicker between
  frames and differ between clips of the same scanner.

Decoder (docs/METHODS.md, "Decoding"): lossy JPEG decoders disagree by a few grey levels
(their inverse DCTs and chroma upsampling differ: pylibjpeg-libjpeg and Pillow's libjpeg-turbo
give raw YBR values up to 3 apart on pydicom-data's JPEG clips), and pydicom picks the first
installed of GDCM, pylibjpeg, Pillow, so what the models saw would depend on what else is
installed. The plugin is therefore pinned per transfer syntax (DECODING_PLUGINS): JPEG baseline
and extended → Pillow, the decoder the EchoNet reference code ran on (pydicom 2 with Pillow);
the lossless syntaxes and JPEG 2000 → pylibjpeg (lossless is exact by definition; JPEG 2000
through OpenJPEG, as Pillow's would). Clip.decoder names the library and its version.

Video (MPEG-2, H.264, HEVC transfer syntaxes): the frames are one bitstream, decoded forward by
PyAV (FFmpeg) in ai/video.py; Clip.decoder names PyAV and its FFmpeg.

Timing: frame time from FrameTime, else FrameTimeVector (mean increment), else CineRate, else
RecommendedDisplayFrameRate; heart rate from HeartRate (0 means "not recorded"); R-wave times
from RWaveTimeVector, else RWavePointer (1-based frame numbers) through the frame times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import features
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import pixel_array

from ai.clip import Clip, Frame
from ai.regions import parse_regions
from ai.video import VideoDecodeError, VideoFrames, bitstream, decoder_name, is_video

logger = logging.getLogger(__name__)

Source = Dataset | str | PathLike[str]


class DecodeError(ValueError):
    """The instance cannot be turned into RGB frames (no pixel data, unsupported layout)."""


# (pydicom decoding plugin, the package that decodes) → its transfer syntaxes (module doc).
_PINNED: dict[tuple[str, str], tuple[str, ...]] = {
    ("pillow", "pillow"): (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit),
    ("pylibjpeg", "pylibjpeg-libjpeg"): (
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        uid.JPEGLSLossless,
        uid.JPEGLSNearLossless,
    ),
    ("pylibjpeg", "pylibjpeg-openjpeg"): (
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.HTJ2KLossless,
        uid.HTJ2KLosslessRPCL,
        uid.HTJ2K,
    ),
    ("pylibjpeg", "pylibjpeg-rle"): (uid.RLELossless,),
}
DECODING_PLUGINS = {syntax: pair for pair, syntaxes in _PINNED.items() for syntax in syntaxes}
NATIVE = "native"
VIDEO = "pyav"  # Decoder.plugin of the video syntaxes: ai/video.py, not a pydicom plugin


@dataclass(frozen=True)
class Decoder:
    plugin: str  # pydicom's decoding_plugin; "" lets pydicom choose (uncompressed data)
    name: str  # what decodes, with its version, for the record


def choose_decoder(transfer_syntax: str, bits_stored: int) -> Decoder:
    """The pinned decoder of a transfer syntax (see the module doc)."""
    if is_video(transfer_syntax):
        return Decoder(VIDEO, decoder_name())
    plugin, package = DECODING_PLUGINS.get(transfer_syntax, ("", ""))
    if transfer_syntax == uid.JPEGExtended12Bit and bits_stored > 8:
        plugin, package = "pylibjpeg", "pylibjpeg-libjpeg"  # Pillow's libjpeg is 8-bit only
    if not plugin:
        compressed = uid.UID(transfer_syntax).is_compressed if transfer_syntax else False
        return Decoder("", "pydicom default" if compressed else NATIVE)
    return Decoder(plugin, _described(package))


def _described(package: str) -> str:
    try:
        name = f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} (not installed)"
    if package == "pillow":
        turbo = features.version("libjpeg_turbo")
        return f"{name} (libjpeg-turbo {turbo})" if turbo else name
    return name


def to_uint8(
    values: npt.NDArray[np.generic], bits_stored: int, signed: bool
) -> npt.NDArray[np.uint8]:
    """Linear map of the stored range [0, 2**bits_stored − 1] onto [0, 255] (see module doc)."""
    if values.dtype == np.uint8 and not signed:
        return values.astype(np.uint8, copy=False)
    wide = values.astype(np.float64)
    if signed:
        wide = wide + 2.0 ** (bits_stored - 1)
    top = 2.0**bits_stored - 1.0
    return np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8)


def palette_to_uint8(rgb: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """apply_color_lut gives uint8 for 8-bit palettes and uint16 (full range) for 16-bit ones."""
    if rgb.dtype == np.uint8:
        return rgb.astype(np.uint8, copy=False)
    return np.clip(np.rint(rgb.astype(np.float64) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _PixelLayout:
    photometric: str
    samples: int
    bits_stored: int
    signed: bool
    frames: int


def _layout(ds: Dataset) -> _PixelLayout:
    missing = [
        name
        for name in ("Rows", "Columns", "PhotometricInterpretation", "BitsStored")
        if name not in ds
    ]
    if missing:
        raise DecodeError(f"missing {', '.join(missing)}")
    return _PixelLayout(
        photometric=str(ds.PhotometricInterpretation).strip().upper(),
        samples=int(ds.get("SamplesPerPixel", 1)),
        bits_stored=int(ds.BitsStored),
        signed=int(ds.get("PixelRepresentation", 0)) == 1,
        frames=int(ds.get("NumberOfFrames", 1) or 1),
    )


def to_rgb(decoded: npt.NDArray[np.generic], ds: Dataset) -> Frame:
    """One decoded frame (as pydicom returns it, YBR already converted) → (rows, cols, 3) uint8."""
    layout = _layout(ds)
    if layout.photometric == "PALETTE COLOR":
        return palette_to_uint8(apply_color_lut(decoded, ds))
    if layout.photometric in ("MONOCHROME1", "MONOCHROME2"):
        grey = to_uint8(decoded, layout.bits_stored, layout.signed)
        if layout.photometric == "MONOCHROME1":
            grey = (255 - grey).astype(np.uint8)
        return np.repeat(grey[..., np.newaxis], 3, axis=-1)
    if layout.samples == 3 and decoded.ndim == 3 and decoded.shape[-1] == 3:
        return to_uint8(decoded, layout.bits_stored, layout.signed)
    raise DecodeError(
        f"unsupported PhotometricInterpretation {layout.photometric!r} with "
        f"SamplesPerPixel {layout.samples}"
    )


class DicomFrames:
    """A FrameSource that decodes frame i when asked (pydicom ``pixel_array(..., index=i)``).

    Given a path, each access re-reads only that frame's bytes from the file, so a long clip is
    never held whole in memory; given a Dataset, the encoded pixel data stays in the dataset and
    only the requested frame is decoded.
    """

    def __init__(self, ds: Dataset, path: Path | None = None) -> None:
        if "PixelData" not in ds:
            raise DecodeError("no PixelData")
        self._ds = ds
        self._path = path
        self._layout = _layout(ds)
        file_meta = getattr(ds, "file_meta", None)
        syntax = str(file_meta.get("TransferSyntaxUID", "")) if file_meta is not None else ""
        self.decoder = choose_decoder(syntax, self._layout.bits_stored)
        self._video: VideoFrames | None = None
        if self.decoder.plugin == VIDEO:
            # The compressed stream is read whole (it is the clip's size on disk); frames are
            # decoded from it as they are asked for.
            try:
                stream = bitstream(ds.PixelData)
                self._video = VideoFrames(
                    stream, syntax, self._layout.frames, int(ds.Rows), int(ds.Columns)
                )
            except VideoDecodeError as exc:
                raise DecodeError(str(exc)) from exc
            except ValueError as exc:  # pydicom: Pixel Data not encapsulated as declared
                raise DecodeError(f"video Pixel Data unreadable: {exc}") from exc

    def __len__(self) -> int:
        return self._layout.frames

    def __getitem__(self, index: int) -> Frame:
        if index < 0:
            index += self._layout.frames
        if not 0 <= index < self._layout.frames:
            raise IndexError(f"frame {index} outside 0..{self._layout.frames - 1}")
        if self._video is not None:
            try:
                return self._video[index]
            except VideoDecodeError as exc:
                raise DecodeError(str(exc)) from exc
        source: Dataset | Path = self._path if self._path is not None else self._ds
        # as_rgb: explicit YBR → RGB; decoding_plugin: the pinned decoder (module docstring).
        decoded = pixel_array(source, index=index, as_rgb=True, decoding_plugin=self.decoder.plugin)
        return to_rgb(decoded, self._ds)


def _frame_times_ms(ds: Dataset) -> tuple[float | None, tuple[float, ...]]:
    """(mean frame time, per-frame increments from FrameTimeVector or ())."""
    vector = _floats(ds.get("FrameTimeVector"))
    frame_time = ds.get("FrameTime")
    if frame_time is not None and float(frame_time) > 0:
        return float(frame_time), vector
    increments = [v for v in vector[1:] if v > 0]
    if increments:
        return float(np.mean(increments)), vector
    for rate_name in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = ds.get(rate_name)
        if rate is not None and float(rate) > 0:
            return 1000.0 / float(rate), vector
    return None, vector


def _frame_start_ms(
    frame: int, frame_time: float | None, vector: tuple[float, ...]
) -> float | None:
    if len(vector) > frame:
        # FrameTimeVector: increment from the previous frame, the first value is 0.
        return float(sum(vector[1 : frame + 1]))
    if frame_time is None:
        return None
    return frame * frame_time


def _r_wave_times_ms(
    ds: Dataset, frame_time: float | None, vector: tuple[float, ...]
) -> tuple[float, ...]:
    if ds.get("RWaveTimeVector") is not None:
        return _floats(ds.RWaveTimeVector)
    pointers = _floats(ds.get("RWavePointer"))
    times = [_frame_start_ms(int(n) - 1, frame_time, vector) for n in pointers]
    return tuple(t for t in times if t is not None)


def _values(value: object) -> list[object]:
    """A DICOM value of multiplicity 1-n as a list (pydicom gives a scalar when VM is 1)."""
    if value is None:
        return []
    if isinstance(value, list | tuple | MultiValue):
        return list(value)
    return [value]


def _floats(value: object) -> tuple[float, ...]:
    return tuple(float(v) for v in _values(value) if str(v).strip() != "")  # type: ignore[arg-type]


def _heart_rate(ds: Dataset) -> float | None:
    value = ds.get("HeartRate")
    if value is None or str(value).strip() == "":
        return None
    rate = float(value)
    return rate if rate > 0 else None  # scanners write 0 when no ECG was attached


def _metadata(ds: Dataset) -> dict[str, object]:
    """Header values the view rules read; nothing that identifies the patient."""
    codes: list[tuple[str, str, str]] = []
    for item in ds.get("ViewCodeSequence", []) or []:
        codes.append(
            (
                str(item.get("CodingSchemeDesignator", "")),
                str(item.get("CodeValue", "") or item.get("LongCodeValue", "")),
                str(item.get("CodeMeaning", "")),
            )
        )
    meta: dict[str, object] = {"view_codes": tuple(codes)}
    for name in (
        "SeriesDescription",
        "ImageComments",
        "StudyDescription",
        "ProtocolName",
        "PhotometricInterpretation",
        "Manufacturer",
        "ManufacturerModelName",
        "Modality",
    ):
        value = ds.get(name)
        if value is not None and str(value).strip():
            meta[name] = str(value)
    image_type = ds.get("ImageType")
    if image_type is not None:
        meta["ImageType"] = tuple(str(v) for v in _values(image_type))
    if hasattr(ds, "file_meta") and "TransferSyntaxUID" in ds.file_meta:
        meta["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
    return meta


def load_clip(source: Source) -> Clip:
    """Read a DICOM instance (a Dataset or a path) into a Clip with lazily decoded frames."""
    path: Path | None = None
    if isinstance(source, Dataset):
        ds = source
    else:
        path = Path(source)
        # Large values (Pixel Data) are deferred: frames are read from the file one at a time
        # (DicomFrames), yet we still learn whether the file has pixel data at all.
        ds = pydicom.dcmread(path, defer_size="64 KB")
    frames = DicomFrames(ds, path)
    rows, columns = int(ds.Rows), int(ds.Columns)
    frame_time, vector = _frame_times_ms(ds)
    clip = Clip(
        frames=frames,
        rows=rows,
        columns=columns,
        regions=parse_regions(ds, rows=rows, columns=columns),
        frame_time_ms=frame_time,
        heart_rate_bpm=_heart_rate(ds),
        r_wave_times_ms=_r_wave_times_ms(ds, frame_time, vector),
        sop_instance_uid=str(ds.SOPInstanceUID) if "SOPInstanceUID" in ds else None,
        sop_class_uid=str(ds.SOPClassUID) if "SOPClassUID" in ds else None,
        metadata=_metadata(ds),
        decoder=frames.decoder.name,
    )
    logger.debug(
        "decoded header: %d frames %dx%d, %d regions",
        len(frames),
        rows,
        columns,
        len(clip.regions),
        extra={"sop_instance_uid": clip.sop_instance_uid},
    )
    return clip
