"""ai.decode: every ultrasound file pydicom and pydicom-data ship decodes frame by frame to the
same RGB pixels as pydicom's own pixel_array after the documented colour conversion, JPEG
through Pillow whichever other decoders are installed."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.processing import apply_color_lut, convert_color_space
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    generate_uid,
)

from ai.analyze import analyze
from ai.decode import DecodeError, load_clip
from ai.result_json import result_from_json, result_to_json


def sample(name: str) -> Path:
    """A file of pydicom's bundled examples or pydicom-data."""
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing: is pydicom-data installed?"
    return Path(path)


# Every US file of pydicom's bundled examples and pydicom-data (MEASURED.md), covering native
# little/big endian, RLE, JPEG baseline YBR, JPEG lossless, JPEG 2000 (RCT/ICT), 8- and 16-bit
# palette colour, monochrome and RGB.
US_FILES = [
    "examples_ybr_color.dcm",
    "examples_palette.dcm",
    "examples_rgb_color.dcm",
    "examples_jpeg2k.dcm",
    "color3d_jpeg_baseline.dcm",
    "OBXXXX1A.dcm",
    "OBXXXX1A_2frame.dcm",
    "OBXXXX1A_expb.dcm",
    "OBXXXX1A_expb_2frame.dcm",
    "OBXXXX1A_rle.dcm",
    "OBXXXX1A_rle_2frame.dcm",
    "US1_UNCI.dcm",
    "US1_UNCR.dcm",
    "US1_J2KI.dcm",
    "US1_J2KR.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "ExplVR_BigEnd.dcm",
    "color-pl.dcm",
    "color-px.dcm",
]


# Lossy JPEG is decoded by Pillow, the EchoNet reference's decoder (pydicom 2 with Pillow).
JPEG_LOSSY = (JPEGBaseline8Bit, JPEGExtended12Bit)


def reference_rgb(ds: Dataset) -> npt.NDArray[np.uint8]:
    """pydicom's whole-clip pixel_array through the documented rule, as (frames, rows, cols, 3)."""
    plugin = "pillow" if ds.file_meta.TransferSyntaxUID in JPEG_LOSSY else ""
    array = pixel_array(ds, decoding_plugin=plugin)  # pydicom 3: YBR converted to RGB
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(array, ds)
        if rgb.dtype == np.uint16:
            rgb = np.rint(rgb / 257.0).astype(np.uint8)
    elif photometric.startswith("MONOCHROME"):
        assert ds.BitsStored == 8
        rgb = np.repeat(array[..., None], 3, axis=-1)
    else:
        rgb = array
    rgb = rgb.astype(np.uint8)
    return rgb if frames > 1 else rgb[None]


@pytest.mark.parametrize("name", US_FILES)
def test_frames_match_pydicom(name: str) -> None:
    path = sample(name)
    ds = pydicom.dcmread(path)
    expected = reference_rgb(ds)
    for clip in (load_clip(path), load_clip(ds)):
        assert len(clip) == expected.shape[0]
        assert (clip.rows, clip.columns) == expected.shape[1:3]
        # Long clips: first, one in the middle, last (decoding all 120 frames twice is slow).
        for index in sorted({0, len(clip) // 2, len(clip) - 1}):
            frame = clip.frames[index]
            assert frame.dtype == np.uint8 and frame.shape == expected.shape[1:]
            np.testing.assert_array_equal(frame, expected[index])


def test_ybr_is_converted_to_rgb_explicitly() -> None:
    """The raw JPEG planes are YBR_FULL_422; ours equal pydicom's YBR→RGB conversion of them."""
    ds = pydicom.dcmread(sample("examples_ybr_color.dcm"))
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    raw = pixel_array(ds, index=3, raw=True, decoding_plugin="pillow")
    converted = convert_color_space(raw, "YBR_FULL", "RGB")
    ours = load_clip(ds).frames[3]
    assert np.abs(ours.astype(int) - converted.astype(int)).max() <= 1
    # ... and they really differ from the raw planes (a colour image, not grey).
    assert np.abs(ours.astype(int) - raw.astype(int)).mean() > 5


def test_native_ybr_full_is_converted_to_rgb() -> None:
    """Uncompressed YBR_FULL (no codec converts it): the RGB we give back is the original."""
    ds = pydicom.dcmread(sample("US1_UNCR.dcm"))
    original = ds.pixel_array
    ybr = convert_color_space(original, "RGB", "YBR_FULL")
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PixelData = ybr.tobytes()
    ours = load_clip(ds).frames[0]
    assert np.abs(ours.astype(int) - original.astype(int)).max() <= 2


def test_sixteen_bit_palette_maps_to_uint8_by_the_rule() -> None:
    ds = pydicom.dcmread(sample("gdcm-US-ALOKA-16.dcm"))
    assert ds.BitsAllocated == 16
    lut = apply_color_lut(ds.pixel_array, ds)
    ours = load_clip(ds).frames[0]
    np.testing.assert_array_equal(ours, np.rint(lut * 255.0 / 65535.0).astype(np.uint8))
    assert ours.max() > 200  # not squashed into the low bits


@pytest.mark.skipif(shutil.which("dcmcjpls") is None, reason="dcmtk dcmcjpls not installed")
@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "OBXXXX1A_2frame.dcm"])
def test_jpeg_ls_from_dcmtk_decodes_to_the_native_pixels(name: str, tmp_path: Path) -> None:
    """JPEG-LS lossless written by dcmtk (a real encoder) decodes to the uncompressed pixels."""
    out = tmp_path / "jls.dcm"
    subprocess.run(["dcmcjpls", str(sample(name)), str(out)], check=True, capture_output=True)
    jls = pydicom.dcmread(out)
    assert jls.file_meta.TransferSyntaxUID == JPEGLSLossless
    native = load_clip(sample(name))
    decoded = load_clip(out)
    assert len(decoded) == len(native)
    for index in range(len(native)):
        np.testing.assert_array_equal(decoded.frames[index], native.frames[index])


def _mono_dataset(bits: int, photometric: str, values: npt.NDArray[np.uint16]) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = values.shape[-2:]
    ds.NumberOfFrames = values.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = values.astype("<u2").tobytes()
    return ds


def test_monochrome_twelve_bit_and_inversion() -> None:
    values = np.array([[[0, 4095], [2048, 1024]]] * 2, dtype=np.uint16)
    mono2 = load_clip(_mono_dataset(12, "MONOCHROME2", values)).frames[1]
    assert mono2.shape == (2, 2, 3)
    np.testing.assert_array_equal(mono2[..., 0], [[0, 255], [128, 64]])
    assert (mono2[..., 0] == mono2[..., 2]).all()
    mono1 = load_clip(_mono_dataset(12, "MONOCHROME1", values)).frames[0]
    np.testing.assert_array_equal(mono1[..., 1], [[255, 0], [127, 191]])


def test_frame_index_bounds() -> None:
    clip = load_clip(sample("OBXXXX1A_2frame.dcm"))
    np.testing.assert_array_equal(clip.frames[-1], clip.frames[1])
    with pytest.raises(IndexError):
        clip.frames[2]


def test_missing_pixel_data_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(sample("US1_UNCR.dcm"), stop_before_pixels=True)
    with pytest.raises(DecodeError, match="PixelData"):
        load_clip(ds)
    ds.save_as(tmp_path / "header.dcm")
    with pytest.raises(DecodeError, match="PixelData"):
        load_clip(tmp_path / "header.dcm")


def _timed(**attributes: object) -> Dataset:
    ds = _mono_dataset(8, "MONOCHROME2", np.zeros((5, 2, 2), dtype=np.uint16))
    ds.BitsAllocated, ds.HighBit = 8, 7
    ds.PixelData = bytes(20)
    for name, value in attributes.items():
        setattr(ds, name, value)
    return ds


def test_timing_from_each_attribute() -> None:
    assert load_clip(_timed(FrameTime=20.0)).frame_time_ms == pytest.approx(20.0)
    vector = load_clip(_timed(FrameTimeVector=[0, 25, 25, 30, 20]))
    assert vector.frame_time_ms == pytest.approx(25.0)
    assert load_clip(_timed(CineRate=50)).frame_time_ms == pytest.approx(20.0)
    assert load_clip(_timed(RecommendedDisplayFrameRate=25)).frame_time_ms == pytest.approx(40.0)
    assert load_clip(_timed()).frame_time_ms is None
    # FrameTime wins over CineRate when both are present.
    assert load_clip(_timed(FrameTime=10.0, CineRate=50)).frame_time_ms == pytest.approx(10.0)


def test_heart_rate_and_r_waves() -> None:
    assert load_clip(_timed(HeartRate=0)).heart_rate_bpm is None
    assert load_clip(_timed(HeartRate=72)).heart_rate_bpm == pytest.approx(72.0)
    by_vector = load_clip(_timed(FrameTime=20.0, RWaveTimeVector=[15.5, 850.0]))
    assert by_vector.r_wave_times_ms == pytest.approx((15.5, 850.0))
    # RWavePointer holds 1-based frame numbers; FrameTimeVector gives each frame's start.
    by_pointer = load_clip(_timed(FrameTimeVector=[0, 25, 25, 30, 20], RWavePointer=[1, 4]))
    assert by_pointer.r_wave_times_ms == pytest.approx((0.0, 80.0))
    by_frame_time = load_clip(_timed(FrameTime=20.0, RWavePointer=3))
    assert by_frame_time.r_wave_times_ms == pytest.approx((40.0,))


def test_real_file_timing_and_metadata() -> None:
    clip = load_clip(sample("color3d_jpeg_baseline.dcm"))
    assert clip.frame_time_ms == pytest.approx(33.333)
    assert clip.heart_rate_bpm is None  # the file says HeartRate 0
    assert clip.metadata["PhotometricInterpretation"] == "YBR_FULL_422"
    assert "PatientName" not in clip.metadata


# Decoded in a fresh interpreter, optionally with the pylibjpeg plugin made unavailable (its
# modules set to None in sys.modules, so importing them fails as if not installed).
DECODE_SCRIPT = """
import hashlib, json, sys
if sys.argv[1] == "without-pylibjpeg":
    for name in ("pylibjpeg", "libjpeg", "openjpeg", "rle"):
        sys.modules[name] = None
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import JPEGBaseline8Bit
from ai.decode import load_clip
path = sys.argv[2]
clip = load_clip(path)
frames = b"".join(clip.frames[i].tobytes() for i in (0, len(clip) // 2, len(clip) - 1))
default = pixel_array(path, index=0, as_rgb=True)
print(json.dumps({
    "available": list(get_decoder(JPEGBaseline8Bit).available_plugins),
    "decoder": clip.decoder,
    "ours": hashlib.sha256(frames).hexdigest(),
    "default": hashlib.sha256(default.tobytes()).hexdigest(),
}))
"""


def decode_elsewhere(mode: str, path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", DECODE_SCRIPT, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("name", ["color3d_jpeg_baseline.dcm", "examples_ybr_color.dcm"])
def test_jpeg_decodes_to_the_same_pixels_whichever_decoders_are_installed(name: str) -> None:
    path = sample(name)
    full = decode_elsewhere("as-installed", path)
    reduced = decode_elsewhere("without-pylibjpeg", path)
    # The two interpreters really differ in what pydicom could pick ...
    assert "pylibjpeg" in full["available"] and "pylibjpeg" not in reduced["available"]
    # ... and the node decodes the same pixels with the same recorded decoder in both.
    assert full["ours"] == reduced["ours"]
    assert full["decoder"] == reduced["decoder"]
    assert str(full["decoder"]).startswith(f"pillow {importlib.metadata.version('pillow')}")


def test_jpeg_frames_are_pillows_and_other_syntaxes_name_their_decoder() -> None:
    path = sample("color3d_jpeg_baseline.dcm")
    clip = load_clip(path)
    for index in (0, 60):
        pillow = pixel_array(path, index=index, as_rgb=True, decoding_plugin="pillow")
        np.testing.assert_array_equal(clip.frames[index], pillow)
    assert "libjpeg-turbo" in clip.decoder
    version = importlib.metadata.version
    assert load_clip(sample("US1_UNCR.dcm")).decoder == "native"
    assert load_clip(sample("OBXXXX1A_rle.dcm")).decoder == (
        f"pylibjpeg-rle {version('pylibjpeg-rle')}"
    )
    assert load_clip(sample("US1_J2KI.dcm")).decoder == (
        f"pylibjpeg-openjpeg {version('pylibjpeg-openjpeg')}"
    )
    assert load_clip(sample("JPGLosslessP14SV1_1s_1f_8b.dcm")).decoder == (
        f"pylibjpeg-libjpeg {version('pylibjpeg-libjpeg')}"
    )


def test_the_decoder_is_kept_with_the_clip_result() -> None:
    result = analyze(sample("color3d_jpeg_baseline.dcm"))
    assert result.decoder == load_clip(sample("color3d_jpeg_baseline.dcm")).decoder
    document = result_to_json(result)
    assert result_from_json(document) == result
    del document["decoder"]  # a result recorded before the decoder was
    assert result_from_json(document).decoder == ""
