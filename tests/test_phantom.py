"""The phantom's files: valid DICOM (dciodvfy), regions that round-trip, determinism, CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from ai.clip import UltrasoundRegion
from ai.phantom import CLIP_NAMES, generate_study, make_clip, region_of
from echo_node.cli import app

SMALL: dict[str, Any] = {"rows": 240, "columns": 320, "cycles": 2, "frame_rate": 25.0}
ROOT = "1.2.826.0.1.3680043.10.999."


@pytest.fixture(scope="module")
def jpeg_study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("jpeg")
    return generate_study(out, 11, uid_root=ROOT, view_codes=True, **SMALL)


@pytest.fixture(scope="module")
def raw_study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_study(tmp_path_factory.mktemp("raw"), 12, compressed=False, **SMALL)


def truth(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return document


def dciodvfy(path: Path) -> str:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


@pytest.mark.peer
@pytest.mark.parametrize("which", ["jpeg_study", "raw_study"])
def test_every_object_passes_dciodvfy(which: str, request: pytest.FixtureRequest) -> None:
    paths: list[Path] = request.getfixturevalue(which)
    assert [p.stem for p in paths] == list(CLIP_NAMES)
    for path in paths:
        report = dciodvfy(path)
        iod = "USMultiFrameImage" if path.stem in ("plax", "a4c") else "USImage"
        assert report.splitlines()[0].strip() == iod, report
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def test_headers_are_those_of_a_scanner_export(jpeg_study: list[Path]) -> None:
    for path in jpeg_study:
        ds = pydicom.dcmread(path)
        doc = truth(path)
        assert ds.Modality == "US"
        assert ds.Manufacturer == "Echo Node Phantom"
        assert str(ds.PatientName) == "PHANTOM^ECHO^11"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        assert ds.PhotometricInterpretation == "YBR_FULL_422"
        assert (ds.SamplesPerPixel, ds.BitsAllocated, ds.PlanarConfiguration) == (3, 8, 0)
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert uid.startswith(ROOT)
        assert ds.SOPInstanceUID == doc["sop_instance_uid"]
        assert ds.StudyInstanceUID == doc["study_instance_uid"]
        assert int(ds.HeartRate) == round(doc["heart_rate_bpm"])
        if path.stem in ("plax", "a4c"):
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
            assert int(ds.NumberOfFrames) == doc["number_of_frames"]
            assert ds.FrameIncrementPointer == 0x00181063
            assert float(ds.FrameTime) == pytest.approx(doc["frame_time_ms"], abs=1e-3)
            assert ds.ImageType[3] == "0001"
            assert ds.ViewCodeSequence[0].CodeValue in ("399139001", "399214001")
        else:
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
            assert "NumberOfFrames" not in ds
            assert ds.ImageType[3] == ("0005" if path.stem == "tr_cw" else "0009")
        pixels = ds.pixel_array
        assert pixels.shape[-3:] == (240, 320, 3)


def _region(item: pydicom.Dataset) -> UltrasoundRegion:
    return UltrasoundRegion(
        spatial_format=item.RegionSpatialFormat,
        data_type=item.RegionDataType,
        flags=item.RegionFlags,
        min_x0=item.RegionLocationMinX0,
        min_y0=item.RegionLocationMinY0,
        max_x1=item.RegionLocationMaxX1,
        max_y1=item.RegionLocationMaxY1,
        physical_units_x=item.PhysicalUnitsXDirection,
        physical_units_y=item.PhysicalUnitsYDirection,
        physical_delta_x=item.PhysicalDeltaX,
        physical_delta_y=item.PhysicalDeltaY,
        reference_pixel_x0=item.ReferencePixelX0,
        reference_pixel_y0=item.ReferencePixelY0,
        reference_physical_value_x=item.ReferencePixelPhysicalValueX,
        reference_physical_value_y=item.ReferencePixelPhysicalValueY,
    )


def test_regions_read_back_equal_what_was_written(jpeg_study: list[Path]) -> None:
    for path in jpeg_study:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        doc = truth(path)
        read = [_region(item) for item in ds.SequenceOfUltrasoundRegions]
        assert read == [region_of(doc, i) for i in range(len(doc["regions"]))]
        for region in read:
            assert 0 <= region.min_x0 < region.max_x1 < ds.Columns
            assert 0 <= region.min_y0 < region.max_y1 < ds.Rows
        tissue = read[0]
        assert (tissue.spatial_format, tissue.data_type) == (1, 1)
        assert (tissue.physical_units_x, tissue.physical_units_y) == (3, 3)
        assert tissue.physical_delta_x == tissue.physical_delta_y > 0
        if path.stem in ("tr_cw", "mv_pw"):
            spectral = read[1]
            assert spectral.spatial_format == 3
            assert spectral.data_type == (4 if path.stem == "tr_cw" else 3)
            assert (spectral.physical_units_x, spectral.physical_units_y) == (4, 7)
            assert spectral.physical_delta_y < 0 < spectral.physical_delta_x
            assert spectral.min_y0 > tissue.max_y1  # the spectrum lies below the 2D image
            baseline = spectral.min_y0 + (spectral.reference_pixel_y0 or 0)
            assert baseline == doc["baseline_row"]


def test_same_seed_same_pixels_other_seed_other_heart(tmp_path: Path) -> None:
    small = {"rows": 160, "columns": 200, "cycles": 1, "frame_rate": 20.0}
    first = generate_study(tmp_path / "a", 5, **small)
    again = generate_study(tmp_path / "b", 5, **small)
    other = generate_study(tmp_path / "c", 6, **small)
    for one, two in zip(first, again, strict=True):
        assert np.array_equal(pydicom.dcmread(one).pixel_array, pydicom.dcmread(two).pixel_array)
        assert truth(one) == truth(two)
    assert truth(first[0])["diastolic"] != truth(other[0])["diastolic"]
    assert truth(first[1])["edv_ml"] != truth(other[1])["edv_ml"]
    plax_a = pydicom.dcmread(first[0]).pixel_array
    plax_c = pydicom.dcmread(other[0]).pixel_array
    assert not np.array_equal(plax_a[0], plax_c[0])


def test_a_rendered_clip_converts_to_the_ai_clip() -> None:
    rendered = make_clip("plax", 8, rows=160, columns=200, cycles=1, frame_rate=20.0)
    clip = rendered.to_clip()
    assert len(clip) == rendered.truth["ed_frames"][-1] + 1
    assert clip.frames[0].shape == (160, 200, 3)
    assert np.array_equal(clip.frames[0][..., 1], rendered.frames[0])
    assert clip.regions == rendered.regions
    assert clip.r_wave_times_ms[1] == pytest.approx(60000.0 / rendered.patient.heart_rate_bpm)
    doppler = make_clip("mv_pw", 8, rows=160, columns=200).to_clip()
    assert len(doppler) == 1 and doppler.regions[1].data_type == 3
    assert doppler.r_wave_times_ms


def test_spectral_strip_starts_where_echonet_doppler_models_expect_it() -> None:
    # EchoNet-Measurements skips 768×1024 Doppler images whose strip starts outside rows 340–350.
    spectral = make_clip("tr_cw", 2, rows=768, columns=1024).regions[1]
    assert 340 <= spectral.min_y0 <= 350


def test_cli_writes_studies_with_truth_and_previews(tmp_path: Path) -> None:
    args = ["phantom", "--out", str(tmp_path), "--seed", "3", "--studies", "2", "--raw"]
    args += ["--rows", "160", "--columns", "200", "--cycles", "1", "--frame-rate", "20", "--png"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for seed in (3, 4):
        folder = tmp_path / f"phantom-{seed}"
        for name in CLIP_NAMES:
            ds = pydicom.dcmread(folder / f"{name}.dcm")
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert ds.PhotometricInterpretation == "RGB"
            assert "ViewCodeSequence" not in ds  # off unless --view-codes
            assert truth(folder / f"{name}.dcm")["seed"] == seed
            assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_full_size_study_takes_under_five_seconds_of_cpu(tmp_path: Path) -> None:
    # CPU time, not wall time: other processes share these two cores.
    start = time.process_time()
    paths = generate_study(tmp_path, 21)
    elapsed = time.process_time() - start
    assert pydicom.dcmread(paths[0], stop_before_pixels=True).Rows == 600
    assert elapsed < 5.0, f"{elapsed:.1f} s"
