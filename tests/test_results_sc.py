"""The overlay Multi-frame True Color SC of a real scanner clip (pydicom's SonoSite example),
checked with dciodvfy and read back with pydicom. tests/test_overlay.py checks the pixels on
the phantom."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from echo_node.results import build_overlay_sc, plan_for, render_for
from echo_node.results.draw import Rendering
from echo_node.results.report import Report, SourceClip, build_report
from echo_node.results.series import Reference, overlay_series
from echo_node.results.sr import COMPREHENSIVE_SR
from tests.test_results_data import NODE, dciodvfy, plax_result, source_dataset


@pytest.fixture(scope="module")
def source() -> tuple[Dataset, npt.NDArray[np.uint8]]:
    ds = source_dataset()
    # The SonoSite file's Patient's Name "PLA" is a retired form dciodvfy warns about; the SC
    # copies it, and these tests hold the SC to no warning at all.
    ds.PatientName = "SONOSITE^PLA"
    return ds, np.ascontiguousarray(ds.pixel_array)


def _report(ds: Dataset) -> Report:
    return build_report([SourceClip(ds, plax_result(ds.SOPInstanceUID))])


def _rendering(ds: Dataset, frames: npt.NDArray[np.uint8]) -> Rendering:
    return render_for(ds, frames, plan_for(ds, _report(ds)))


def _write(ds: Dataset, path: Path) -> Dataset:
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


@pytest.mark.peer
@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, ExplicitVRLittleEndian])
def test_sc_validates_and_decodes(
    source: tuple[Dataset, npt.NDArray[np.uint8]], syntax: str, tmp_path: Path
) -> None:
    ds, frames = source
    rendering = _rendering(ds, frames)
    path = tmp_path / "sc.dcm"
    started = datetime.datetime(2026, 12, 3, 14, 5, 9)
    report = Reference(
        COMPREHENSIVE_SR, "1.2.826.0.1.3680043.8.498.7", "1.2.826.0.1.3680043.8.498.8"
    )
    sc = build_overlay_sc(
        ds,
        rendering,
        node=NODE,
        transfer_syntax=syntax,
        series=overlay_series(2, started),
        report=report,
    )
    back = _write(sc, path)
    assert dciodvfy(path) == ([], [])
    assert back.file_meta.TransferSyntaxUID == syntax
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4"
    assert int(back.NumberOfFrames) == len(frames)
    pixels = back.pixel_array
    # The legend did not fit beside the sector and its region: a panel widens the image.
    assert pixels.shape == (len(frames), ds.Rows, rendering.placement.columns, 3)
    assert rendering.placement.columns > ds.Columns and back.Columns % 2 == 0
    assert "panel added right of the source image" in back.ImageComments
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
    assert float(back.FrameTime) == pytest.approx(float(ds.FrameTime), abs=1e-3)
    reference = back.SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == ds.SOPClassUID
    assert back.Manufacturer == NODE.manufacturer
    models = {item.ManufacturerModelName for item in back.ContributingEquipmentSequence}
    assert models == {"classical"}
    # The heart is unpaired: Image Laterality U, no General Series Laterality.
    assert back.ImageLaterality == "U" and "Laterality" not in back
    assert back.BodyPartExamined == "HEART"
    assert "PatientOrientation" in back
    # The findings sit on frames 3 (end-diastole values) and 12 (LVIDs).
    assert back.RepresentativeFrameNumber == 4
    assert list(back.FrameNumbersOfInterest) == [4, 13]


def test_without_a_heart_rate_calipers_stay_through_the_clip(
    source: tuple[Dataset, npt.NDArray[np.uint8]],
) -> None:
    """No heart rate in this header (0) and one frame a value: nothing says how long a beat
    is, so each caliper is drawn on every frame, frame 1 (a PACS thumbnail) included."""
    ds, frames = source
    rendering = _rendering(ds, frames)
    burned = rendering.frames[:, :, : ds.Columns].astype(np.int16)
    original = frames.astype(np.int16)
    assert len(rendering.plan.calipers) == 4
    for caliper in rendering.plan.calipers:
        (x0, y0), (x1, y1) = caliper.points
        row, column = round((y0 + y1) / 2), round((x0 + x1) / 2)
        near = np.s_[row - 1 : row + 2, column - 1 : column + 2]
        for frame in range(len(frames)):
            changed = np.abs(burned[frame][near] - original[frame][near]).max() > 60
            assert changed, (caliper.number, frame)


def test_bad_arguments_are_named(source: tuple[Dataset, npt.NDArray[np.uint8]]) -> None:
    ds, frames = source
    plan = plan_for(ds, _report(ds))
    with pytest.raises(ValueError, match="frames"):
        render_for(ds, frames[:, :100], plan)
    with pytest.raises(ValueError, match="frames"):
        render_for(ds, frames[..., 0], plan)
    with pytest.raises(ValueError, match="frames"):
        render_for(ds, frames[:5], plan)
    with pytest.raises(ValueError, match="transfer_syntax"):
        build_overlay_sc(
            ds, render_for(ds, frames, plan), node=NODE, transfer_syntax="1.2.840.10008.1.2.5"
        )
    header = pydicom.dcmread(ds.filename, stop_before_pixels=True)
    del header.FrameTime
    with pytest.raises(ValueError, match="frame_time_ms"):
        plan_for(header, _report(ds))
