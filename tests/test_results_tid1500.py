"""The TID 1500 Measurement Report: what the report model reports, in the shape OHIF's SR reader
draws (docs/VIEWERS.md), valid for dciodvfy and dsrdump, read back by highdicom."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset

from ai.findings import (
    Aggregation,
    Beat,
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    View,
    ViewDecision,
)
from echo_node.results import build_sr, codes
from echo_node.results.report import Report, SourceClip, build_report
from echo_node.results.tid1500 import (
    LENGTH_TOOL,
    PROBE_TOOL,
    RATIO_TRACKING,
    build_measurement_report,
)
from tests.test_results_data import (
    CLASSICAL,
    NODE,
    a4c_result,
    dciodvfy,
    dsrdump,
    sibling,
    source_header,
    walk,
)

IMAGING_MEASUREMENT_REPORT = "126000"

# LVIDd over three beats (median 4.81 cm on frame 13), TR Vmax over three beats (the highest,
# 2.61 m/s, on the spectrum's frame 0), mitral E and A on the same frame.
LVIDD_BEATS = (
    Beat(4.70, 3, ((250.0, 52.0), (254.0, 118.0))),
    Beat(4.81, 13, ((251.0, 50.0), (255.0, 120.0))),
    Beat(4.95, 23, ((252.0, 49.0), (256.0, 123.0))),
)
TR_BEATS = (
    Beat(-250.0, 0, ((60.0, 190.0),)),
    Beat(-261.0, 0, ((120.0, 200.0),)),
    Beat(-255.0, 0, ((180.0, 195.0),)),
)


def clean_header() -> Dataset:
    """The SonoSite clip's header without its retired patient attributes (dciodvfy warns)."""
    header = source_header()
    header.PatientName = "DOE^JANE"
    del header.OtherPatientIDs
    return header


def plax(uid: str) -> ClipResult:
    lvidd = Finding(
        "LVIDd",
        4.81,
        "cm",
        CLASSICAL,
        (3, 13, 23),
        tuple(p for b in LVIDD_BEATS for p in b.points),
        cardiac_phase="diastole",
        beats=LVIDD_BEATS,
        aggregation=Aggregation.MEDIAN,
    )
    ivsd = Finding("IVSd", 1.05, "cm", CLASSICAL, (13,), ((240.0, 30.0), (242.0, 50.5)))
    pipeline = PipelineResult("plax", PipelineStatus.OK, (ivsd, lvidd))
    return ClipResult(uid, ViewDecision(View.PLAX, "test", 1.0), (pipeline,), frame_count=30)


def doppler(uid: str, flags: tuple[str, ...] = ()) -> ClipResult:
    tr = Finding(
        "TR_Vmax",
        -261.0,
        "cm/s",
        CLASSICAL,
        (0,),
        tuple(p for b in TR_BEATS for p in b.points),
        flags=flags,
        beats=TR_BEATS,
        aggregation=Aggregation.MAX,
    )
    e = Finding("MV_E", 82.0, "cm/s", CLASSICAL, (0,), ((60.0, 150.0),), "diastole", flags)
    a = Finding("MV_A", 61.0, "cm/s", CLASSICAL, (0,), ((80.0, 160.0),), "diastole", flags)
    pipeline = PipelineResult("doppler", PipelineStatus.OK, (tr, e, a))
    decision = ViewDecision(View.DOPPLER, "region:spectral", 1.0, doppler_mode="CW")
    return ClipResult(uid, decision, (pipeline,))


def study(
    *results: ClipResult,
) -> tuple[Report, list[Dataset]]:
    first = clean_header()
    headers = [first] + [sibling(first) for _ in results[1:]]
    sources = [
        SourceClip(h, dataclasses.replace(r, sop_instance_uid=h.SOPInstanceUID))
        for h, r in zip(headers, results, strict=True)
    ]
    return build_report(sources), headers


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    report, headers = study(
        plax(""), doppler("", ("flow_identified_by_shape",)), a4c_result("", installed=True)
    )
    document = build_measurement_report(report, headers, node=NODE)
    assert document is not None
    path = tmp_path_factory.mktemp("tid1500") / "tid1500.dcm"
    document.save_as(path, enforce_file_format=True)
    return report, path


def _groups(dataset: Dataset) -> list[Dataset]:
    (measurements,) = [
        item
        for item in dataset.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    ]
    return list(measurements.ContentSequence)


def _item(group: Dataset, meaning: str) -> Dataset:
    (item,) = [
        i for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == meaning
    ]
    return item


def _nums(group: Dataset) -> list[Dataset]:
    return [i for i in group.ContentSequence if i.ValueType == "NUM"]


def _comments(group: Dataset) -> list[str]:
    return [
        i.TextValue
        for i in group.ContentSequence
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "121106"
    ]


@pytest.mark.peer
def test_valid_for_dciodvfy_and_dsrdump(written: tuple[Report, Path]) -> None:
    _report, path = written
    assert dciodvfy(path) == ([], [])
    dump = dsrdump(path)  # no constraint warnings
    assert f'({IMAGING_MEASUREMENT_REPORT},DCM,"Imaging Measurement Report")' in dump
    assert '(126010,DCM,"Imaging Measurements")' in dump


def test_each_value_with_a_caliper_reads_back_as_the_report_has_it(
    written: tuple[Report, Path],
) -> None:
    report, path = written
    document = hd.sr.srread(path)
    assert isinstance(document, hd.sr.ComprehensiveSR)
    groups = document.content.get_image_measurement_groups()
    read = {m.name.value: (m.value, m.unit.value) for g in groups for m in g.get_measurements()}
    expected = {
        codes.IVSD_2D.value: (1.05, "cm"),
        codes.LVIDD_2D.value: (4.81, "cm"),
        codes.TR_VMAX.value: (261.0, "cm/s"),  # a speed; its direction is in the concept
        codes.TR_PEAK_GRADIENT.value: (27.0, "mm[Hg]"),  # 4 × 2.61²
        codes.MV_E_VMAX.value: (82.0, "cm/s"),
        codes.MV_A_VMAX.value: (61.0, "cm/s"),
        codes.MV_E_A_RATIO.value: (1.34, "{ratio}"),
    }
    assert read == expected
    # Each is the report model's number: one rounding for every result object.
    for value in (*report.values, *report.derived):
        if value.key != "LVEF":
            assert value.value in {v for v, _unit in read.values()}, value.key
    # No caliper, so not drawable: the ejection fraction is in the echo SR and the PDF only.
    assert report.value("LVEF") is not None
    assert codes.LVEF.value not in read


def test_the_caliper_is_the_beat_nearest_the_reported_value_on_its_frame(
    written: tuple[Report, Path],
) -> None:
    report, path = written
    groups = {_comments(g)[0]: g for g in _groups(pydicom.dcmread(path))}
    plax_uid = report.sources[0].sop_instance_uid
    lvidd = _nums(groups["LVIDd 4.81 cm"])[0]
    scoord = lvidd.ContentSequence[0]
    assert (scoord.ValueType, scoord.GraphicType) == ("SCOORD", "POLYLINE")
    assert [float(v) for v in scoord.GraphicData] == [251.0, 50.0, 255.0, 120.0]  # the median
    (image,) = scoord.ContentSequence
    assert image.RelationshipType == "SELECTED FROM"
    reference = image.ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == plax_uid
    assert reference.ReferencedFrameNumber == 14  # zero-based frame 13
    tr = _nums(groups["TR Vmax 2.61 m/s"])[0]
    assert [float(v) for v in tr.ContentSequence[0].GraphicData] == [120.0, 200.0]  # fastest
    assert tr.ContentSequence[0].GraphicType == "POINT"


def test_groups_have_the_shape_ohif_reads(written: tuple[Report, Path]) -> None:
    """The contract of OHIF 3.13's SR reader and @cornerstonejs/adapters (docs/VIEWERS.md)."""
    report, path = written
    dataset = pydicom.dcmread(path)
    assert dataset.ConceptNameCodeSequence[0].CodeValue == IMAGING_MEASUREMENT_REPORT
    assert dataset.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    (library,) = [
        i for i in dataset.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111028"
    ]
    (library_group,) = library.ContentSequence
    assert library_group.ConceptNameCodeSequence[0].CodeValue == "126200"
    listed = {
        i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in library_group.ContentSequence
    }
    assert listed == {s.sop_instance_uid for s in report.sources}
    tracking_uids = set()
    tools = []
    for group in _groups(dataset):
        assert group.ConceptNameCodeSequence[0].CodeValue == "125007"
        tool = _item(group, "Tracking Identifier").TextValue
        tools.append(tool)
        tracking_uids.add(_item(group, "Tracking Unique Identifier").UID)
        # Every NUM is drawn: a SCOORD first, selected from one frame of the clip (OHIF fails
        # to load an SR with a group it cannot place on an image).
        for num in _nums(group):
            scoord = num.ContentSequence[0]
            assert scoord.ValueType == "SCOORD" and scoord.RelationshipType == "INFERRED FROM"
            assert "ReferencedFrameNumber" in scoord.ContentSequence[0].ReferencedSOPSequence[0]
        first = _nums(group)[0].ContentSequence[0]
        points = len(first.GraphicData) // 2
        if tool == LENGTH_TOOL:
            assert (first.GraphicType, points) == ("POLYLINE", 2)
        elif tool == PROBE_TOOL:
            assert (first.GraphicType, points) == ("POINT", 1)
        else:
            assert tool == RATIO_TRACKING and (first.GraphicType, points) == ("POLYLINE", 2)
        # The name the viewer lists it by comes first among the group's comments.
        comments = _comments(group)
        shown = report.value(_key_of(comments[0], report))
        assert shown is not None and comments[0] == shown.display
        assert _item(group, "Finding Site").ConceptCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert len(tracking_uids) == len(tools) == 6
    assert sorted(tools) == sorted([LENGTH_TOOL] * 2 + [PROBE_TOOL] * 3 + [RATIO_TRACKING])


def _key_of(display: str, report: Report) -> str:
    return next(v.key for v in (*report.values, *report.derived) if v.display == display)


def test_qualifiers_travel_with_their_value(written: tuple[Report, Path]) -> None:
    _report, path = written
    comments = {tuple(_comments(g)) for g in _groups(pydicom.dcmread(path))}
    assert (
        "TR Vmax 2.61 m/s",
        "Flow identified by its Doppler pattern; the clip does not name it.",
    ) in comments
    assert ("LVIDd 4.81 cm",) in comments


def test_no_reported_value_no_document() -> None:
    withheld = ("outside_physiological_range",)
    report, headers = study(doppler("", withheld))
    assert not report.values and report.notes
    assert build_measurement_report(report, headers, node=NODE) is None


def test_only_values_without_a_caliper_no_document() -> None:
    report, headers = study(a4c_result("", installed=True))
    assert [v.key for v in report.values] == ["LVEF"]
    assert build_measurement_report(report, headers, node=NODE) is None


def test_the_echo_sr_is_evidence_and_the_earlier_document_its_predecessor() -> None:
    report, headers = study(plax(""))
    echo_sr = build_sr([SourceClip(h) for h in headers], node=NODE)
    earlier = build_measurement_report(report, headers, node=NODE)
    assert earlier is not None
    document = build_measurement_report(
        report, headers, node=NODE, echo_sr=echo_sr, predecessor=earlier
    )
    assert document is not None
    (predecessor,) = document.PredecessorDocumentsSequence
    refs = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert refs[0].ReferencedSOPInstanceUID == earlier.SOPInstanceUID
    # The echo SR of the same run is evidence of the same procedure, beside the clip.
    current = {
        ref.ReferencedSOPInstanceUID
        for study_item in document.CurrentRequestedProcedureEvidenceSequence
        for series in study_item.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert current == {headers[0].SOPInstanceUID, echo_sr.SOPInstanceUID}
    assert (document.CompletionFlag, document.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert document.PatientName == headers[0].PatientName


def test_bad_arguments_are_named() -> None:
    report, headers = study(plax(""))
    with pytest.raises(ValueError, match="headers"):
        build_measurement_report(report, [], node=NODE)
    stranger = sibling(headers[0])
    stranger.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(ValueError, match="predecessor"):
        build_measurement_report(report, headers, node=NODE, predecessor=stranger)


def test_only_the_value_types_of_tid_1500_and_its_device_observer(
    written: tuple[Report, Path],
) -> None:
    _report, path = written
    types = {item.ValueType for item in walk(pydicom.dcmread(path).ContentSequence)}
    assert types == {"CODE", "TEXT", "UIDREF", "CONTAINER", "NUM", "SCOORD", "IMAGE"}
