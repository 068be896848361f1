"""The TID 5200 Comprehensive SR, checked with dciodvfy, dsrdump, dsr2html and highdicom's
reader: only what the report model reports is a NUM, every value carries its name, derivation,
provenance and qualifications, and what is not reported is said in plain sentences."""

from __future__ import annotations

import dataclasses
import datetime
import html
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.coding import Code

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
from echo_node.results import SourceClip, build_sr, codes
from echo_node.results.coding import CHARACTERISTICS, CODING_5200, SECTION_ORDER
from echo_node.results.report import Report, build_report
from echo_node.results.series import Reference, report_series
from echo_node.results.sr import COMPREHENSIVE_SR
from tests.conftest import require_tool
from tests.test_results_data import (
    CLASSICAL,
    MODEL,
    NODE,
    a4c_result,
    dciodvfy,
    dsrdump,
    plax_result,
    sibling,
    source_header,
    unknown_result,
    walk,
)

PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
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
PUBLISHED = dataclasses.replace(MODEL, name="echonet-measurements-trvmax", published=True)
OVERLAY = Reference("1.2.840.10008.5.1.4.1.1.7.4", "1.2.826.0.1.3680043.8.498.71", "1.2.3.72")


def header() -> Dataset:
    """The SonoSite clip's header, with a name dciodvfy accepts and a height and weight."""
    ds = source_header()
    ds.PatientName = "SONOSITE^PLA"  # its "PLA" is a retired form dciodvfy warns about
    ds.PatientSize = "1.80"
    ds.PatientWeight = "80"
    ds.HeartRate = 64
    return ds


def doppler(uid: str) -> ClipResult:
    """A CW clip: TR over three beats (the fastest reported) recognised by its shape, and an
    implausible AV Vmax; a PW reading of E and A over two beats."""
    tr_beats = tuple(
        Beat(v, 0, ((100.0 + 100 * i, 200.0 + i),)) for i, v in enumerate((-2.41, -2.55, -2.49))
    )
    tr = Finding(
        "TR_Vmax", -2.55, "m/s", PUBLISHED, (0,), tuple(b.points[0] for b in tr_beats),
        flags=("beats_from_ecg", "flow_identified_by_shape"), beats=tr_beats,
        aggregation=Aggregation.MAX,
    )  # fmt: skip
    av = Finding("AV_Vmax", 4000.0, "cm/s", CLASSICAL, (0,), ((50.0, 60.0),),
                 flags=("outside_physiological_range",))  # fmt: skip
    e_beats = (Beat(80.0, 0, ((60.0, 150.0),)), Beat(84.0, 0, ((160.0, 151.0),)))
    a_beats = (Beat(60.0, 0, ((80.0, 160.0),)), Beat(62.0, 0, ((180.0, 161.0),)))
    e = Finding("MV_E", 82.0, "cm/s", CLASSICAL, (0,), beats=e_beats, aggregation=Aggregation.MEAN)
    a = Finding("MV_A", 61.0, "cm/s", CLASSICAL, (0,), beats=a_beats, aggregation=Aggregation.MEAN)
    return ClipResult(
        uid,
        ViewDecision(View.DOPPLER, "region:spectral", 1.0, doppler_mode="CW"),
        (PipelineResult("doppler", PipelineStatus.OK, (tr, av, e, a)),),
    )


def implausible_lvef(uid: str) -> ClipResult:
    lvef = Finding("LVEF", -0.0877, "%", MODEL, (2, 14), flags=("outside_physiological_range",))
    return ClipResult(
        uid,
        ViewDecision(View.A4C, "test", 1.0),
        (PipelineResult("a4c", PipelineStatus.OK, (lvef,)),),
    )


@dataclass
class Written:
    path: Path
    sources: list[SourceClip]
    report: Report

    def dataset(self) -> Dataset:
        return pydicom.dcmread(self.path)


def study() -> list[SourceClip]:
    plax = header()
    a4c, cw, unknown, missing = (sibling(plax) for _ in range(4))
    for number, ds in enumerate((plax, a4c, cw, unknown, missing), start=1):
        ds.InstanceNumber = number
    return [
        SourceClip(plax, plax_result(plax.SOPInstanceUID)),
        SourceClip(a4c, implausible_lvef(a4c.SOPInstanceUID)),
        SourceClip(cw, doppler(cw.SOPInstanceUID)),
        SourceClip(unknown, unknown_result(unknown.SOPInstanceUID)),
        SourceClip(missing, a4c_result(missing.SOPInstanceUID, installed=False)),
    ]


STARTED = datetime.datetime(2026, 12, 3, 9, 30, 0)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    sources = study()
    path = tmp_path_factory.mktemp("sr") / "sr.dcm"
    sr = build_sr(sources, node=NODE, series=report_series(3, STARTED), overlays=[OVERLAY])
    sr.save_as(path, enforce_file_format=True)
    return Written(path, sources, build_report(sources))


def _index() -> dict[tuple[str, str], set[int]]:
    """(scheme, code) -> every context group pydicom lists it in (a code can appear under
    several keywords, each with its own groups)."""
    index: dict[tuple[str, str], set[int]] = {}
    for scheme, by_keyword in concepts.items():
        for entry in by_keyword.values():
            for code, (_meaning, cids) in entry.items():
                index.setdefault((scheme, code), set()).update(cids)
    return index


# Enumerated values of template rows (TID 5201 height and weight) and UCUM's own units: in no
# context group, so not in pydicom's tables; checked against PS3.16 TID 5201 and UCUM.
NOT_IN_CID_TABLES = {
    codes.PATIENT_HEIGHT,
    codes.PATIENT_WEIGHT,
    codes.UNIT_G,
    codes.UNIT_KG,
    codes.UNIT_M2,
}


def test_codes_are_the_standards() -> None:
    """Every code exists in PS3.16 (pydicom's tables), values in the context group they name."""
    index = _index()
    constants = [v for v in vars(codes).values() if isinstance(v, Code)]
    assert len(constants) > 80
    for code in constants:
        assert code.scheme_designator in ("DCM", "SCT", "LN", "UCUM"), code  # no private scheme
        if code not in NOT_IN_CID_TABLES:
            assert (code.scheme_designator, code.value) in index, code
    value_groups = {
        12224: [codes.MODE_2D, codes.MODE_M, codes.MODE_DOPPLER_PULSED, codes.MODE_DOPPLER_CW],
        12226: [codes.VIEW_PLAX, codes.VIEW_A4C],
        12233: [codes.END_DIASTOLE, codes.END_SYSTOLE],
        12221: [codes.REGURGITANT_FLOW],
        12236: [codes.LVOT_SITE],
        12235: [codes.LATERAL_MITRAL_ANNULUS, codes.MEDIAL_MITRAL_ANNULUS],
        3627: [codes.MEAN, codes.MEDIAN, codes.ESTIMATED],
        3488: [codes.MAXIMUM],
        12227: [codes.SIMPLIFIED_BERNOULLI],
        12232: [codes.LV_MASS_LINEAR],
        3663: [codes.BSA_DUBOIS],
        7162: [codes.ARTIFICIAL_INTELLIGENCE, codes.EDGE_DETECTION],
        7006: [codes.SOURCE_DOCUMENT],
        7005: [codes.PROCESSING_EQUIPMENT],
        7181: [
            codes.UNIT_CM,
            codes.UNIT_PERCENT,
            codes.UNIT_CM_PER_S,
            codes.UNIT_RATIO,
            codes.UNIT_MMHG,
            codes.UNIT_PER_MIN,
        ],
    }
    for cid, members in value_groups.items():
        for code in members:
            keywords = cid_concepts[cid][code.scheme_designator]
            assert any(code.value in concepts[code.scheme_designator][k] for k in keywords), code
    # Each concept belongs to its section's measurement group (TID 5200 $MeasType).
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
    # CID 12204 has no RV basal dimension: the CID 12300 (core echo) concept stands in. RWT has
    # no concept: a Ratio (CID 12303) with its plain name as Equivalent Meaning.
    outside_section = {"RVbase": {12300}, "RWT": {12303}}
    for name, coding in CODING_5200.items():
        cids = index[(coding.concept.scheme_designator, coding.concept.value)]
        allowed = section_cids[coding.section] | outside_section.get(name, set())
        assert allowed & cids, name
    assert tuple(section_cids) == SECTION_ORDER
    assert CHARACTERISTICS["heart_rate"].value == "8867-4"  # CID 12220, in every section


@pytest.mark.peer
def test_sr_validates_without_errors_or_warnings(written: Written) -> None:
    assert dciodvfy(written.path) == ([], [])
    ds = written.dataset()
    assert ds.SOPClassUID == COMPREHENSIVE_SR
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "5200"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    assert (ds.Manufacturer, ds.ManufacturerModelName) == ("Echo Node", NODE.model_name)
    assert ds.SoftwareVersions == NODE.software_version
    assert ds.DeviceUID == NODE.device_uid
    assert "CodingSchemeIdentificationSequence" not in ds  # no private codes to declare


def test_only_reported_values_are_nums_each_with_its_value_and_unit(written: Written) -> None:
    sr = hd.sr.ComprehensiveSR.from_dataset(written.dataset())
    nums = [i for i in walk(sr.ContentSequence) if i.ValueType == "NUM"]
    report = written.report
    expected = {
        (CODING_5200[v.key].concept.value, v.key): (v.value, v.unit)
        for v in (*report.values, *report.derived)
    }
    expected.update(
        {(CHARACTERISTICS[c.key].value, c.key): (c.value, c.presentation.unit)
         for c in report.characteristics}
    )  # fmt: skip
    assert len(nums) == len(expected)
    found = sorted(
        (n.ConceptNameCodeSequence[0].CodeValue, float(n.MeasuredValueSequence[0].NumericValue),
         n.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
        for n in nums
    )  # fmt: skip
    assert found == sorted((code, value, unit) for (code, _), (value, unit) in expected.items())
    keys = {k for _, k in expected}
    # Measured, derived (E/A of the reported E and A, TR PG, LV mass, RWT, FS), characteristics.
    assert {"IVSd", "LVIDd", "LVPWd", "LVIDs", "TR_Vmax", "MV_E", "MV_A"} <= keys
    assert {"MV_E_A", "TR_PG", "LV_mass", "RWT", "FS", "height", "weight", "bsa"} <= keys
    assert {"heart_rate"} <= keys
    # Withheld: no NUM at all, whatever its code.
    assert "LVEF" not in keys and "AV_Vmax" not in keys
    assert not any(n.ConceptNameCodeSequence[0].CodeValue == codes.LVEF.value for n in nums)
    # The number is written with the digits the display shows.
    tr = next(n for n in nums if n.ConceptNameCodeSequence[0].CodeValue == "20355-4")
    assert tr.MeasuredValueSequence[0].NumericValue == "255"


def test_what_is_not_reported_is_said_in_plain_sentences(written: Written) -> None:
    root = written.dataset().ContentSequence
    comments = [i for i in root if i.ConceptNameCodeSequence[0].CodeValue == "121106"]
    texts = [i.TextValue for i in comments]
    assert texts == list(written.report.notes)
    assert "Left Ventricular Ejection Fraction not reported: outside physiological limits." in texts
    assert "Aortic Valve Peak Velocity not reported: outside physiological limits." in texts
    assert "Clip 4: view not recognised; no measurement made." in texts
    assert (
        "Clip 5 (apical four-chamber): LV ejection fraction not measured; the AI model is not "
        "installed." in texts
    )
    # Clinical words only: no UIDs, flag identifiers or commands anywhere in the document text.
    flags = {"outside_physiological_range", "flow_identified_by_shape", "beats_from_ecg"}
    for item in walk(written.dataset().ContentSequence):
        if item.ValueType == "TEXT":
            assert not re.search(r"\b\d+(\.\d+){3,}\b", item.TextValue), item.TextValue
            assert "echo-node" not in item.TextValue and not flags & set(item.TextValue.split())
    # The notes follow the findings (a reader meets the values first).
    last_container = max(i for i, item in enumerate(root) if item.ValueType == "CONTAINER")
    assert all(root.index(c) > last_container for c in comments)


def _num(ds: Dataset, code: str) -> Dataset:
    return next(
        i for i in walk(ds.ContentSequence)
        if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == code
    )  # fmt: skip


def _children(num: Dataset) -> dict[str, list[Dataset]]:
    found: dict[str, list[Dataset]] = {}
    for child in num.ContentSequence:
        found.setdefault(child.ConceptNameCodeSequence[0].CodeValue, []).append(child)
    return found


def test_each_value_says_how_beats_were_combined_and_what_made_it(written: Written) -> None:
    ds = written.dataset()
    tr = _children(_num(ds, "20355-4"))
    assert tr["121401"][0].ConceptCodeSequence[0].CodeValue == codes.MAXIMUM.value
    assert tr["111001"][0].TextValue == PUBLISHED.name
    assert tr["111003"][0].TextValue == f"{PUBLISHED.version} sha256:{PUBLISHED.sha256}"
    assert tr["111002"][0].TextValue == "weights match the digest published by the model's authors"
    assert tr["111000"][0].ConceptCodeSequence[0].CodeValue == codes.ARTIFICIAL_INTELLIGENCE.value
    # The qualification is on the value itself.
    (comment,) = tr["121106"]
    assert comment.RelationshipType == "HAS PROPERTIES"
    assert comment.TextValue == "Flow identified by its Doppler pattern; the clip does not name it."
    e = _children(_num(ds, codes.MV_E_PEAK.value))
    assert e["121401"][0].ConceptCodeSequence[0].CodeValue == codes.MEAN.value
    assert e["111000"][0].ConceptCodeSequence[0].CodeValue == codes.EDGE_DETECTION.value
    ivs = _children(_num(ds, codes.IVSD.value))
    assert "121401" not in ivs  # one frame: nothing combined
    # No AI value is coded "Directly measured" (its meaning in TID 5300 is a caliper value).
    assert not any(
        i.ValueType == "CODE" and i.ConceptCodeSequence[0].CodeValue == "125316"
        for i in walk(ds.ContentSequence)
    )


def test_calipers_are_drawn_per_beat_on_their_frame(written: Written) -> None:
    ds = written.dataset()
    scoords = _children(_num(ds, "20355-4"))["121112"]
    assert [s.GraphicType for s in scoords] == ["POINT"] * 3
    cw = written.sources[2].header
    for scoord, x in zip(scoords, (100.0, 200.0, 300.0), strict=True):
        assert float(scoord.GraphicData[0]) == x
        image = scoord.ContentSequence[0]
        assert image.RelationshipType == "SELECTED FROM"
        assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == cw.SOPInstanceUID
        assert int(image.ReferencedSOPSequence[0].ReferencedFrameNumber) == 1
    # A 2D caliper: a line on its own frame.
    plax = written.sources[0]
    assert plax.result is not None
    lvidd = next(f for f in plax.result.pipelines[0].findings if f.name == "LVIDd")
    (line,) = _children(_num(ds, codes.LVIDD.value))["121112"]
    assert line.GraphicType == "POLYLINE"
    assert [float(v) for v in line.GraphicData] == [c for p in lvidd.points for c in p]
    frame = line.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber
    assert int(frame) == lvidd.frames[0] + 1


def test_derived_values_state_their_formula(written: Written) -> None:
    ds = written.dataset()
    mass = _children(_num(ds, codes.LV_MASS.value))
    assert mass["370129005"][0].ConceptCodeSequence[0].CodeValue == codes.LV_MASS_LINEAR.value
    assert mass["112034"][0].TextValue.startswith(
        "LV mass = 0.8 x 1.04 x [(IVSd + LVIDd + LVPWd)^3"
    )
    assert mass["111001"][0].TextValue == "Echo Node calculation"
    gradient = _children(_num(ds, codes.PEAK_GRADIENT.value))
    assert gradient["370129005"][0].ConceptCodeSequence[0].CodeValue == "125218"
    assert gradient["260674002"][0].ConceptCodeSequence[0].CodeValue == "397417004"
    # TR PG from a qualified TR Vmax carries the qualification too.
    assert "Flow identified by its Doppler pattern" in gradient["121106"][0].TextValue
    rwt = _children(_num(ds, codes.RATIO.value))
    assert rwt["121050"][0].TextValue == "Relative Wall Thickness"
    assert rwt["112034"][0].TextValue == "RWT = 2 x LVPWd / LVIDd"
    bsa = _children(_num(ds, codes.BODY_SURFACE_AREA.value))
    assert bsa["370129005"][0].ConceptCodeSequence[0].CodeValue == codes.BSA_DUBOIS.value


def test_provenance_in_contributing_equipment(written: Written) -> None:
    # Besides the source's acquisition equipment and highdicom itself: one item per algorithm.
    items = written.dataset().ContributingEquipmentSequence
    equipment = {
        e.ManufacturerModelName: e
        for e in items
        if e.Manufacturer == "Echo Node" and e.ManufacturerModelName != "highdicom"
    }
    model = equipment[PUBLISHED.name]
    assert model.SoftwareVersions == PUBLISHED.version
    assert model.DeviceSerialNumber == PUBLISHED.sha256
    assert "match the digest published" in model.ContributionDescription
    assert equipment[CLASSICAL.name].ContributionDescription.startswith("classical")
    # A withheld value's algorithm contributed nothing to the document.
    assert set(equipment) == {v.algorithm.name for v in written.report.values}


def test_series_says_which_run_and_lists_its_overlays(written: Written) -> None:
    ds = written.dataset()
    assert (ds.SeriesNumber, ds.SeriesDescription) == (
        931,
        "Echo Node report, run 3, supersedes run 2",
    )
    assert (ds.SeriesDate, ds.SeriesTime) == ("20261203", "093000")
    (study_ref,) = ds.PertinentOtherEvidenceSequence
    (series_ref,) = study_ref.ReferencedSeriesSequence
    assert series_ref.SeriesInstanceUID == OVERLAY.series_instance_uid
    assert series_ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == OVERLAY.sop_instance_uid


def _text_of(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


@pytest.mark.peer
def test_any_sr_viewer_prints_each_name_beside_its_value(written: Written, tmp_path: Path) -> None:
    """dcmtk's dsr2html renders the SR as a generic SR viewer does: each NUM's concept name
    directly followed by its value and unit; no number without its name."""
    out = tmp_path / "sr.html"
    subprocess.run([require_tool("dsr2html"), str(written.path), str(out)], check=True)
    page = out.read_text(errors="replace")
    ds = written.dataset()
    nums = [i for i in walk(ds.ContentSequence) if i.ValueType == "NUM"]
    assert nums
    for num in nums:
        name = num.ConceptNameCodeSequence[0].CodeMeaning
        measured = num.MeasuredValueSequence[0]
        value = measured.NumericValue
        unit = measured.MeasurementUnitsCodeSequence[0].CodeValue
        pattern = (
            rf"<b>{re.escape(html.escape(name))}:</b><br>\s*"
            rf'<span class="under">{re.escape(str(value))} {re.escape(html.escape(unit))}</span>'
        )
        assert re.search(pattern, page), (name, value, unit)
    text = _text_of(page)
    for sentence in written.report.notes:
        assert sentence in text
    assert "Mitral Valve E-Wave Peak Velocity" in text


def test_patient_and_study_copied_exactly(written: Written) -> None:
    ds, source = written.dataset(), written.sources[0].header
    compared = [k for k in PATIENT_STUDY_KEYWORDS if k in source]
    assert len(compared) >= 10
    for keyword in compared:
        assert ds[keyword].value == source[keyword].value, keyword
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    referenced = {i.ReferencedSOPInstanceUID for i in evidence.ReferencedSOPSequence}
    assert referenced == {s.header.SOPInstanceUID for s in written.sources}
    # The source's retired Other Patient IDs (empty here) draw no warning and lose nothing.
    assert "OtherPatientIDs" not in ds


@pytest.mark.peer
def test_predecessor_is_referenced(written: Written, tmp_path: Path) -> None:
    first = written.dataset()
    plax = header()
    second = build_sr(
        [SourceClip(plax, a4c_result(plax.SOPInstanceUID, installed=True))],
        node=NODE,
        predecessor=first,
    )
    path = tmp_path / "second.dcm"
    second.save_as(path, enforce_file_format=True)
    assert dciodvfy(path) == ([], [])
    back = pydicom.dcmread(path)
    study_ref = back.PredecessorDocumentsSequence[0]
    assert study_ref.StudyInstanceUID == first.StudyInstanceUID
    series = study_ref.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert back.SOPInstanceUID != first.SOPInstanceUID
    dump = dsrdump(path)
    assert "18043-0,LN" in dump and '"Image View")=(399214001,SCT,' in dump
    # The EF pipeline's value is the mean of its per-beat predictions (frames 2 and 14).
    assert '"Derivation")=(373098007,SCT,"Mean")' in dump


def test_one_value_per_measurement_and_results_by_uid() -> None:
    first, second = header(), sibling(header())
    results = [plax_result(first.SOPInstanceUID), plax_result(second.SOPInstanceUID)]
    sr = build_sr([SourceClip(first), SourceClip(second)], results, node=NODE)
    nums = [i.ConceptNameCodeSequence[0].CodeValue for i in walk(sr.ContentSequence)
            if i.ValueType == "NUM"]  # fmt: skip
    assert len(nums) == len(set(nums))  # one IVSd, one LVIDd ... (and each derived once)


def test_spectral_clip_without_mode_uses_the_measurements_usual_mode() -> None:
    ds = header()
    result = dataclasses.replace(
        doppler(ds.SOPInstanceUID),
        view=ViewDecision(View.DOPPLER, "region:spectral", 1.0, doppler_mode=None),
    )
    sr = build_sr([SourceClip(ds, result)], node=NODE)
    modes = {
        i.ConceptCodeSequence[0].CodeValue
        for i in walk(sr.ContentSequence)
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "399264008"
    }
    assert modes == {codes.MODE_DOPPLER_CW.value, codes.MODE_DOPPLER_PULSED.value}


def test_bad_arguments_are_named() -> None:
    ds = header()
    other_study = sibling(ds)
    other_study.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(ValueError, match="sources"):
        build_sr([SourceClip(ds), SourceClip(other_study)], node=NODE)
    with pytest.raises(ValueError, match="template"):
        build_sr([SourceClip(ds)], node=NODE, template="1500")
    with pytest.raises(ValueError, match="results"):
        build_sr([SourceClip(ds)], [plax_result("1.2.3.9")], node=NODE)


@pytest.mark.peer
def test_non_ascii_names_keep_their_character_set(tmp_path: Path) -> None:
    ds = header()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDescription = "Échographie cardiaque"
    del ds.PatientBirthDate  # a Type 2 attribute the SR must still carry (empty)
    sr = build_sr([SourceClip(ds, plax_result(ds.SOPInstanceUID))], node=NODE)
    path = tmp_path / "utf8.dcm"
    sr.save_as(path, enforce_file_format=True)
    assert dciodvfy(path)[0] == []
    back = pydicom.dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "Müller^Jürgen"
    assert back.StudyDescription == "Échographie cardiaque"
    assert "PatientBirthDate" in back and not back.PatientBirthDate
