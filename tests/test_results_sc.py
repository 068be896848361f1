"""The overlay Multi-frame True Color SC, checked with dciodvfy and read back with pydicom."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from ai.findings import ClipResult
from echo_node.results import build_overlay_sc
from echo_node.results.draw import DISCLAIMER, legend_lines
from echo_node.results.series import Reference, overlay_series
from echo_node.results.sr import COMPREHENSIVE_SR
from tests.test_results_data import NODE, dciodvfy, plax_result, source_dataset

FRAMES = 16  # enough for the findings on frames 3 and 12, small enough to be quick


@pytest.fixture(scope="module")
def source() -> tuple[Dataset, npt.NDArray[np.uint8]]:
    ds = source_dataset()
    # The SonoSite file's Patient's Name "PLA" is a retired form dciodvfy warns about; the SC
    # copies it, and these tests hold the SC to no warning at all.
    ds.PatientName = "SONOSITE^PLA"
    frames = np.ascontiguousarray(ds.pixel_array[:FRAMES])
    return ds, frames


def _write(ds: Dataset, path: Path) -> Dataset:
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


def _segment(points: tuple[tuple[float, float], ...]) -> list[tuple[int, int]]:
    """Pixels (row, column) on the straight caliper between two points."""
    (x0, y0), (x1, y1) = points[0], points[-1]
    steps = int(max(abs(x1 - x0), abs(y1 - y0)))
    return [
        (round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t))
        for t in np.linspace(0.1, 0.9, max(steps // 2, 2))
    ]


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, ExplicitVRLittleEndian])
def test_sc_validates_and_decodes(
    source: tuple[Dataset, npt.NDArray[np.uint8]], syntax: str, tmp_path: Path
) -> None:
    ds, frames = source
    result = plax_result(ds.SOPInstanceUID)
    path = tmp_path / "sc.dcm"
    started = datetime.datetime(2026, 12, 3, 14, 5, 9)
    report = Reference(
        COMPREHENSIVE_SR, "1.2.826.0.1.3680043.8.498.7", "1.2.826.0.1.3680043.8.498.8"
    )
    sc = build_overlay_sc(
        ds,
        frames,
        result,
        node=NODE,
        transfer_syntax=syntax,
        series=overlay_series(2, started),
        report=report,
    )
    back = _write(sc, path)
    assert dciodvfy(path) == ([], [])
    assert back.file_meta.TransferSyntaxUID == syntax
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4"
    assert int(back.NumberOfFrames) == FRAMES
    pixels = back.pixel_array
    assert pixels.shape == frames.shape
    assert back.PhotometricInterpretation == (
        "YBR_FULL_422" if syntax == JPEGBaseline8Bit else "RGB"
    )
    # Same study and patient, its own series, derived from and pointing at the source.
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyID"):
        assert back[keyword].value == ds[keyword].value, keyword
    assert back.SeriesInstanceUID != ds.SeriesInstanceUID
    # The run's overlay series, dated by the run, naming the run's report.
    assert (back.SeriesNumber, back.SeriesDescription) == (922, "Echo Node overlays, run 2")
    assert (back.SeriesDate, back.SeriesTime) == ("20261203", "140509")
    (named,) = back.ReferencedInstanceSequence
    assert named.ReferencedSOPInstanceUID == report.sop_instance_uid
    assert named.ReferencedSOPClassUID == COMPREHENSIVE_SR
    assert named.PurposeOfReferenceCodeSequence[0].CodeValue == "121335"  # Source Document
    assert list(back.ImageType) == ["DERIVED", "SECONDARY"]
    assert back.ConversionType == "WSD"
    assert back.BurnedInAnnotation == "YES"
    assert back.FrameIncrementPointer == pydicom.tag.Tag("FrameTime")
    assert float(back.FrameTime) == pytest.approx(result.frame_time_ms or 0, abs=1e-3)
    reference = back.SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == ds.SOPClassUID
    assert back.Manufacturer == NODE.manufacturer
    models = {item.ManufacturerModelName for item in back.ContributingEquipmentSequence}
    assert models == {f.provenance.name for f in result.pipelines[0].findings}
    # The heart is unpaired: Image Laterality U, no General Series Laterality.
    assert back.ImageLaterality == "U" and "Laterality" not in back
    assert "PatientOrientation" in back


def test_calipers_are_burned_on_their_frame_only(
    source: tuple[Dataset, npt.NDArray[np.uint8]], tmp_path: Path
) -> None:
    ds, frames = source
    result = plax_result(ds.SOPInstanceUID)
    sc = build_overlay_sc(ds, frames, result, node=NODE, transfer_syntax=ExplicitVRLittleEndian)
    burned = _write(sc, tmp_path / "sc.dcm").pixel_array.astype(np.int16)
    original = frames.astype(np.int16)
    for finding in result.pipelines[0].findings:
        (frame,) = finding.frames
        other = 7  # a frame no finding is on
        for row, column in _segment(finding.points):
            near = np.s_[row - 1 : row + 2, column - 1 : column + 2]
            assert np.abs(burned[frame][near] - original[frame][near]).max() > 60
            assert (burned[other][near] == original[other][near]).all()


def test_legend_says_what_made_it_and_is_drawn_on_every_frame(
    source: tuple[Dataset, npt.NDArray[np.uint8]],
) -> None:
    ds, frames = source
    result = plax_result(ds.SOPInstanceUID)
    lines = legend_lines(result, NODE.software_version)
    assert lines[-1] == DISCLAIMER
    assert any("classical 0.3" in line for line in lines)
    assert any(line.startswith("LVIDd 4.81 cm") for line in lines)
    sc = build_overlay_sc(ds, frames, result, node=NODE, transfer_syntax=ExplicitVRLittleEndian)
    burned = sc.pixel_array
    band = slice(frames.shape[1] - 12, frames.shape[1])  # the disclaimer's line at the bottom
    for index in range(FRAMES):
        assert not np.array_equal(burned[index, band, :120], frames[index, band, :120]), index


def test_bad_arguments_are_named(source: tuple[Dataset, npt.NDArray[np.uint8]]) -> None:
    ds, frames = source
    result = plax_result(ds.SOPInstanceUID)
    with pytest.raises(ValueError, match="frames"):
        build_overlay_sc(ds, frames[:, :100], result, node=NODE)
    with pytest.raises(ValueError, match="frames"):
        build_overlay_sc(ds, frames[..., 0], result, node=NODE)
    with pytest.raises(ValueError, match="transfer_syntax"):
        build_overlay_sc(ds, frames, result, node=NODE, transfer_syntax="1.2.840.10008.1.2.5")
    without_time = ClipResult(ds.SOPInstanceUID, result.view, result.pipelines)
    header = pydicom.dcmread(ds.filename, stop_before_pixels=True)
    del header.FrameTime
    with pytest.raises(ValueError, match="frame time"):
        build_overlay_sc(header, frames, without_time, node=NODE)
