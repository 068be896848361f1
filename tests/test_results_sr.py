"""The TID 5200 Comprehensive SR, checked with dciodvfy, dsrdump and highdicom's reader."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.coding import Code

from ai.findings import ClipResult, Finding, PipelineStatus
from echo_node.results import SourceClip, build_sr, codes
from echo_node.results.srcontent import source_references
from tests.test_results_data import (
    CLASSICAL,
    NODE,
    a4c_result,
    dciodvfy,
    doppler_result,
    dsrdump,
    plax_result,
    sibling,
    source_header,
    unknown_result,
    walk,
)

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDs",
    "EthnicGroup",
    "AdditionalPatientHistory",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "NameOfPhysiciansReadingStudy",
)
# Finding.unit -> factor to the unit the SR writes (the AI may report m/s).
TO_SR_UNIT = {("m/s", "cm/s"): 100.0}


@dataclass
class Report:
    path: Path
    sources: list[SourceClip]

    def dataset(self) -> Dataset:
        return pydicom.dcmread(self.path)


def _study() -> list[SourceClip]:
    plax = source_header()
    a4c, doppler, unknown = sibling(plax), sibling(plax), sibling(plax)
    return [
        SourceClip(plax, plax_result(plax.SOPInstanceUID)),
        SourceClip(a4c, a4c_result(a4c.SOPInstanceUID, installed=False)),
        SourceClip(doppler, doppler_result(doppler.SOPInstanceUID, "CW")),
        SourceClip(unknown, unknown_result(unknown.SOPInstanceUID)),
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    sources = _study()
    path = tmp_path_factory.mktemp("sr") / "sr.dcm"
    build_sr(sources, node=NODE).save_as(path, enforce_file_format=True)
    return Report(path, sources)


def _ok_findings(results: list[ClipResult]) -> list[tuple[str, float, str]]:
    return [
        (f.name, f.value, f.unit)
        for r in results
        for p in r.pipelines
        if p.status is PipelineStatus.OK
        for f in p.findings
    ]


def test_codes_are_the_standards() -> None:
    """Every code exists in PS3.16 (pydicom's tables), values in the context group they name."""
    index = {
        (scheme, code): cids
        for scheme, by_keyword in concepts.items()
        for entry in by_keyword.values()
        for code, (_meaning, cids) in entry.items()
    }
    constants = [v for v in vars(codes).values() if isinstance(v, Code)]
    assert len(constants) > 30
    for code in constants:
        if code.scheme_designator == codes.LOCAL_SCHEME:  # the node's own (99...) scheme
            continue
        assert (code.scheme_designator, code.value) in index, code
    value_groups = {
        12224: [codes.MODE_2D, codes.MODE_M, codes.MODE_DOPPLER_PULSED, codes.MODE_DOPPLER_CW],
        12226: [codes.VIEW_PLAX, codes.VIEW_A4C],
        12233: [codes.END_DIASTOLE, codes.END_SYSTOLE],
        12221: [codes.REGURGITANT_FLOW],
        12236: [codes.LVOT_SITE],
        12235: [codes.LATERAL_MITRAL_ANNULUS, codes.MEDIAL_MITRAL_ANNULUS],
        7005: [codes.PROCESSING_EQUIPMENT],
        7181: [codes.UNIT_CM, codes.UNIT_PERCENT, codes.UNIT_CM_PER_S, codes.UNIT_RATIO],
    }
    for cid, members in value_groups.items():
        for code in members:
            keywords = cid_concepts[cid][code.scheme_designator]
            assert any(code.value in concepts[code.scheme_designator][k] for k in keywords), code
    # Each measurement concept belongs to its section's measurement group (TID 5200 $MeasType).
    section_cids = {
        # CID 12200 is the section's $MeasType; it includes CIDs 12201-12203.
        codes.LEFT_VENTRICLE: {12200, 12201, 12202, 12203},
        codes.RIGHT_VENTRICLE: {12204},
        codes.LEFT_ATRIUM: {12205},
        codes.AORTIC_VALVE: {12211},
        codes.MITRAL_VALVE: {12207},
        codes.TRICUSPID_VALVE: {12208},
        codes.AORTA: {12212},
    }
    # CID 12204 has no RV basal dimension: the CID 12300 (core echo) concept stands in.
    outside_section = {"RVbase": {12300}}
    for name, coding in codes.FINDING_CODING.items():
        cids = index[(coding.concept.scheme_designator, coding.concept.value)]
        allowed = section_cids[coding.section] | outside_section.get(name, set())
        assert allowed & set(cids), name
    # The section subjects are the anatomic sites of TID 5200 rows 9-15, in that order.
    assert tuple(section_cids) == codes.SECTION_ORDER


def test_sr_validates_with_dciodvfy(report: Report) -> None:
    errors, _warnings = dciodvfy(report.path)
    assert errors == []
    ds = report.dataset()
    assert ds.SOPClassUID == COMPREHENSIVE_SR
    assert ds.CompletionFlag == "COMPLETE"
    assert ds.VerificationFlag == "UNVERIFIED"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "5200"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    assert (ds.Manufacturer, ds.ManufacturerModelName) == ("Echo Node", NODE.model_name)
    assert ds.SoftwareVersions == NODE.software_version
    described = {item.get("ManufacturerModelName") for item in ds.ContributingEquipmentSequence}
    assert "classical" in described


def test_dsrdump_shows_each_value_with_code_and_unit(report: Report) -> None:
    dump = dsrdump(report.path)
    assert '(125200,DCM,"Adult Echocardiography Procedure Report")' in dump
    num = re.compile(r'NUM:\(([^,]+),LN,"([^"]*)"\)="([^"]+)" \(([^,]+),UCUM')
    written = [(m[0], m[1], float(m[2]), m[3]) for m in num.findall(dump)]
    expected = []
    for name, value, unit in _ok_findings([s.result for s in report.sources if s.result]):
        coding = codes.FINDING_CODING[name]
        factor = TO_SR_UNIT.get((unit, coding.unit.value), 1.0)
        concept = coding.concept
        expected.append((concept.value, concept.meaning, value * factor, coding.unit.value))
    assert sorted(w[0] for w in written) == sorted(e[0] for e in expected)
    for code, meaning, value, unit in expected:
        match = [w for w in written if w[0] == code and w[1] == meaning and w[3] == unit]
        assert len(match) == 1, code
        assert match[0][2] == pytest.approx(value, rel=1e-5)
    for section in (codes.LEFT_VENTRICLE, codes.MITRAL_VALVE, codes.TRICUSPID_VALVE):
        assert f'"Finding Site")=({section.value},SCT,' in dump
    assert '"Direction of Flow")=(397417004,SCT,' in dump
    assert '"Image Mode")=(261198000,SCT,' in dump  # the Doppler clip said CW
    assert '"Cardiac Cycle Point")=(416190007,SCT,' in dump
    assert '"Algorithm Name")="classical"' in dump
    assert f'"Device Observer UID")="{NODE.device_uid}"' in dump


def test_roundtrip_counts_one_num_per_finding(report: Report) -> None:
    sr = hd.sr.ComprehensiveSR.from_dataset(report.dataset())
    items = list(walk(sr.ContentSequence))
    nums = [i for i in items if i.ValueType == "NUM"]
    assert len(nums) == len(_ok_findings([s.result for s in report.sources if s.result]))
    scoords = [i for i in items if i.ValueType == "SCOORD"]
    # Every finding with points has its caliper, selected from its source frame.
    plax = report.sources[0]
    assert plax.result is not None
    lvidd = next(f for f in plax.result.pipelines[0].findings if f.name == "LVIDd")
    caliper = next(
        s for s in scoords if [float(v) for v in s.GraphicData[:2]] == list(lvidd.points[0])
    )
    assert caliper.GraphicType == "POLYLINE"
    image = caliper.ContentSequence[0]
    assert image.RelationshipType == "SELECTED FROM"
    ref = image.ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == plax.header.SOPInstanceUID
    assert int(ref.ReferencedFrameNumber) == lvidd.frames[0] + 1


def test_patient_and_study_copied_exactly(report: Report) -> None:
    ds, source = report.dataset(), report.sources[0].header
    compared = [k for k in PATIENT_STUDY_KEYWORDS if k in source]
    assert len(compared) >= 10
    for keyword in compared:
        assert ds[keyword].value == source[keyword].value, keyword
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    referenced = {i.ReferencedSOPInstanceUID for i in evidence.ReferencedSOPSequence}
    assert referenced == {s.header.SOPInstanceUID for s in report.sources}


def test_pipelines_that_did_not_run_are_stated(report: Report) -> None:
    texts = [
        i.TextValue
        for i in walk(report.dataset().ContentSequence)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "121106"
    ]
    a4c_uid, unknown_uid = report.sources[1].header.SOPInstanceUID, report.sources[3].header
    missing = [t for t in texts if "a4c" in t and "model_not_installed" in t]
    assert len(missing) == 1 and a4c_uid in missing[0]
    assert "echo-node models fetch" in missing[0]
    assert any(unknown_uid.SOPInstanceUID in t and "unknown" in t for t in texts)


def test_predecessor_is_referenced(report: Report, tmp_path: Path) -> None:
    first = report.dataset()
    plax = source_header()
    second = build_sr(
        [SourceClip(plax, a4c_result(plax.SOPInstanceUID, installed=True))],
        node=NODE,
        predecessor=first,
    )
    path = tmp_path / "second.dcm"
    second.save_as(path, enforce_file_format=True)
    errors, _ = dciodvfy(path)
    assert errors == []
    back = pydicom.dcmread(path)
    study = back.PredecessorDocumentsSequence[0]
    assert study.StudyInstanceUID == first.StudyInstanceUID
    series = study.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert back.SOPInstanceUID != first.SOPInstanceUID
    dump = dsrdump(path)
    assert "18043-0,LN" in dump and '"Image View")=(399214001,SCT,' in dump


def test_one_value_per_measurement_and_results_by_uid() -> None:
    first, second = source_header(), sibling(source_header())
    results = [plax_result(first.SOPInstanceUID), plax_result(second.SOPInstanceUID)]
    sr = build_sr([SourceClip(first), SourceClip(second)], results, node=NODE)
    nums = [i for i in walk(sr.ContentSequence) if i.ValueType == "NUM"]
    assert len(nums) == len(results[0].pipelines[0].findings)


def test_spectral_clip_without_mode_uses_the_measurements_usual_mode() -> None:
    header = source_header()
    sr = build_sr([SourceClip(header, doppler_result(header.SOPInstanceUID, None))], node=NODE)
    modes = {
        i.ConceptCodeSequence[0].CodeValue
        for i in walk(sr.ContentSequence)
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "399264008"
    }
    assert modes == {codes.MODE_DOPPLER_CW.value, codes.MODE_DOPPLER_PULSED.value}


def test_bad_arguments_are_named() -> None:
    header = source_header()
    other_study = sibling(header)
    other_study.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(ValueError, match="sources"):
        build_sr([SourceClip(header), SourceClip(other_study)], node=NODE)
    with pytest.raises(ValueError, match="template"):
        build_sr([SourceClip(header)], node=NODE, template="1500")
    with pytest.raises(ValueError, match="results"):
        build_sr([SourceClip(header)], [plax_result("1.2.3.9")], node=NODE)


def test_flagged_duplicate_loses_and_flags_are_stated() -> None:
    first, second = source_header(), sibling(source_header())
    flagged = plax_result(first.SOPInstanceUID)
    findings = tuple(
        replace(f, flags=("outside_training_layout",)) for f in flagged.pipelines[0].findings
    )
    flagged = replace(flagged, pipelines=(replace(flagged.pipelines[0], findings=findings),))
    clean = plax_result(second.SOPInstanceUID)
    sr = build_sr([SourceClip(first, flagged), SourceClip(second, clean)], node=NODE)
    items = list(walk(sr.ContentSequence))
    refs = {
        i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in items if i.ValueType == "IMAGE"
    }
    assert refs == {second.SOPInstanceUID}
    texts = [i.TextValue for i in items if i.ValueType == "TEXT"]
    assert not any("outside_training_layout" in t for t in texts)
    single = build_sr([SourceClip(first, flagged)], node=NODE)
    texts = [i.TextValue for i in walk(single.ContentSequence) if i.ValueType == "TEXT"]
    assert sum("outside_training_layout" in t for t in texts) == len(findings)


def test_non_ascii_names_keep_their_character_set(tmp_path: Path) -> None:
    header = source_header()
    header.SpecificCharacterSet = "ISO_IR 192"
    header.PatientName = "Müller^Jürgen"
    header.StudyDescription = "Échographie cardiaque"
    del header.PatientBirthDate  # a Type 2 attribute the SR must still carry (empty)
    sr = build_sr([SourceClip(header, plax_result(header.SOPInstanceUID))], node=NODE)
    path = tmp_path / "utf8.dcm"
    sr.save_as(path, enforce_file_format=True)
    errors, _ = dciodvfy(path)
    assert errors == []
    back = pydicom.dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "Müller^Jürgen"
    assert back.StudyDescription == "Échographie cardiaque"
    assert "PatientBirthDate" in back and not back.PatientBirthDate


def test_a_value_from_several_frames_has_a_caliper_on_each_frame() -> None:
    """The median over beats: one SCOORD per frame, each with that frame's two points."""
    header = source_header()
    points = ((240.0, 30.0), (242.0, 50.5), (241.0, 31.0), (243.0, 52.0), (239.0, 29.0), (241, 49))
    over_beats = Finding("IVSd", 1.05, "cm", CLASSICAL, (3, 13, 23), points)
    scoords = source_references(over_beats, header)
    assert [s.GraphicType for s in scoords] == ["POLYLINE"] * 3
    selected = [s.ContentSequence[0].ReferencedSOPSequence[0] for s in scoords]
    assert [image.ReferencedFrameNumber for image in selected] == [4, 14, 24]
    assert [list(s.GraphicData) for s in scoords] == [
        [240.0, 30.0, 242.0, 50.5],
        [241.0, 31.0, 243.0, 52.0],
        [239.0, 29.0, 241.0, 49.0],
    ]
    # Beat peaks on one Doppler image are separate marks, not a path.
    peaks = Finding(
        "TR_Vmax", -280.0, "cm/s", CLASSICAL, (0,), ((100, 300), (300, 305), (500, 298))
    )
    (marks,) = source_references(peaks, header)
    assert marks.GraphicType == "MULTIPOINT"
