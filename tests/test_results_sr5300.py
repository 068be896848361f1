"""The TID 5300 option: a phantom study's analysis (the classical Doppler engine on the phantom's
spectral clips, 2D values from the phantom's truth) written as TID 5300, checked with dciodvfy,
dsrdump and pydicom's CID tables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts

from ai.analyze import analyze
from ai.findings import (
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)
from ai.phantom.study import generate_study
from echo_node.results import SourceClip, build_sr, codes
from echo_node.results.catalogue import DERIVED, MEASURED
from echo_node.results.coding import CHARACTERISTICS, CODING_5300
from echo_node.results.device import algorithm_uid
from echo_node.results.report import Report as ReportModel
from echo_node.results.report import build_report
from tests.test_results_data import (
    CLASSICAL,
    MODEL,
    NODE,
    dciodvfy,
    dsrdump,
    source_header,
    walk,
)

NUM = re.compile(r'NUM:\(([^,]+),(LN|SCT),"([^"]*)"\)="([^"]+)" \(([^,]+),UCUM')


def _members(cid: int) -> dict[tuple[str, str], str]:
    """(scheme, code) -> Code Meaning of every member of a context group, from pydicom."""
    return {
        (scheme, code): meaning
        for scheme, keywords in cid_concepts[cid].items()
        for keyword in keywords
        for code, (meaning, _cids) in concepts[scheme][keyword].items()
    }


@dataclass
class Report:
    path: Path
    sources: list[SourceClip]

    def dataset(self) -> Dataset:
        return pydicom.dcmread(self.path)


def _truth(phantom: Path, clip: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((phantom / f"{clip}.json").read_text())
    return document


def _plax_result(phantom: Path) -> ClipResult:
    """The phantom's diastolic PLAX values as the PLAX pipeline reports them (no weights here),
    plus one finding no TID 5300 code exists for."""
    truth = _truth(phantom, "plax")
    ivs_rv, ivs_lv = truth["frames"][0]["keypoints_px"][3], truth["frames"][0]["keypoints_px"][2]
    lvpw_endo, lvpw_epi = (
        truth["frames"][0]["keypoints_px"][1],
        truth["frames"][0]["keypoints_px"][0],
    )
    points = {
        "IVSd": (tuple(ivs_rv), tuple(ivs_lv)),
        "LVIDd": (tuple(ivs_lv), tuple(lvpw_endo)),
        "LVPWd": (tuple(lvpw_endo), tuple(lvpw_epi)),
    }
    findings = [
        Finding(name, truth["diastolic"][f"{name}_cm"], "cm", CLASSICAL, (0,), points[name])
        for name in ("IVSd", "LVIDd", "LVPWd")
    ]
    findings.append(Finding("E_e_prime", 9.5, "1", CLASSICAL, (0,)))  # E/e': not in CID 12300
    return ClipResult(
        truth["sop_instance_uid"],
        ViewDecision(View.PLAX, "test", 1.0),
        (PipelineResult("plax", PipelineStatus.OK, tuple(findings)),),
    )


def _a4c_result(phantom: Path) -> ClipResult:
    truth = _truth(phantom, "a4c")
    contour = ((150.0, 60.0), (180.0, 90.0), (170.0, 150.0), (140.0, 150.0), (130.0, 90.0))
    lvef = Finding("LVEF", truth["expected"]["LVEF"]["value"], "%", MODEL, (2, 9), contour)
    return ClipResult(
        truth["sop_instance_uid"],
        ViewDecision(View.A4C, "ViewCodeSequence", 1.0),
        (PipelineResult("a4c", PipelineStatus.OK, (lvef,)),),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    root = tmp_path_factory.mktemp("sr5300")
    phantom = root / "phantom"
    generate_study(phantom, 3, rows=240, columns=320, cycles=1, frame_rate=15.0)
    header = {
        name: pydicom.dcmread(phantom / f"{name}.dcm", stop_before_pixels=True)
        for name in ("plax", "a4c", "tr_cw", "mv_pw")
    }
    sources = [
        SourceClip(header["plax"], _plax_result(phantom)),
        SourceClip(header["a4c"], _a4c_result(phantom)),
        SourceClip(header["tr_cw"], analyze(phantom / "tr_cw.dcm")),
        SourceClip(header["mv_pw"], analyze(phantom / "mv_pw.dcm")),
    ]
    path = root / "sr.dcm"
    build_sr(sources, node=NODE, template="5300").save_as(path, enforce_file_format=True)
    yield Report(path, sources)


def _values(report: Report) -> ReportModel:
    return build_report(report.sources)


def _container(ds: Dataset, code: str) -> list[Dataset]:
    return [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == code]


@pytest.mark.peer
def test_5300_sr_validates_and_names_its_template(report: Report) -> None:
    assert dciodvfy(report.path) == ([], [])  # no private coding scheme left to warn about
    ds = report.dataset()
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "5300"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "125200"
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert "CodingSchemeIdentificationSequence" not in ds


@pytest.mark.peer
def test_every_reported_value_is_one_num_with_its_cid_12300_code(report: Report) -> None:
    dump = dsrdump(report.path)
    written = {(m[0], float(m[3]), m[4]) for m in NUM.findall(dump)}
    model = _values(report)
    expected = set()
    for value in (*model.values, *model.derived):
        coding = CODING_5300[value.key]
        expected.add((coding.concept.value, value.value, value.unit))
    for item in model.characteristics:
        expected.add((CHARACTERISTICS[item.key].value, item.value, item.presentation.unit))
    assert written == expected
    keys = {v.key for v in model.values} | {d.key for d in model.derived}
    # The classical engine measured both spectral clips; the PLAX and A4C values were given.
    assert {"TR_Vmax", "MV_E", "MV_A", "IVSd", "LVIDd", "LVPWd", "LVEF"} <= keys
    assert {"MV_E_A", "TR_PG", "LV_mass", "RWT"} <= keys
    core = _members(12300)
    for value in (*model.values, *model.derived):
        coding = CODING_5300[value.key]
        if coding.pre_coordinated:
            assert core[("LN", coding.concept.value)] == coding.concept.meaning, value.key
    lvidd = codes.LVIDD_2D
    assert f'NUM:({lvidd.value},LN,"{lvidd.meaning}")' in dump
    assert '"Short Label")="LVPWd (2D)"' in dump
    # A finding the report has no place for (E/e' here) is not written.
    assert "E_e_prime" not in dump


def test_pre_coordinated_values_are_grouped_by_the_algorithm_that_made_them(
    report: Report,
) -> None:
    ds = report.dataset()
    model = _values(report)
    groups = _container(ds, "125301")
    pre = [v for v in model.values if CODING_5300[v.key].pre_coordinated and not v.qualifiers]
    assert len(groups) == len({v.algorithm for v in pre}) >= 2  # classical engine, PLAX values
    named: dict[str, set[str]] = {}
    for group in groups:
        items = {i.ConceptNameCodeSequence[0].CodeValue: i for i in group.ContentSequence}
        assert items["121005"].RelationshipType == "HAS OBS CONTEXT"  # observer type: device
        uid = items["121012"].UID
        name = items["111001"].TextValue
        version = items["111003"].TextValue
        made_by = next(v.algorithm for v in model.values if v.algorithm.name == name)
        assert uid == algorithm_uid(made_by) and version == made_by.version_text
        named[name] = {
            i.ConceptNameCodeSequence[0].CodeValue
            for i in group.ContentSequence
            if i.ValueType == "NUM"
        }
        # TID 5301 is non-extensible: derivation, label and source only.
        for num in (i for i in group.ContentSequence if i.ValueType == "NUM"):
            children = {c.ConceptNameCodeSequence[0].CodeValue for c in num.ContentSequence}
            assert children <= {"121401", "125309", "121112"} and "125309" in children
    # No algorithm stacked at the root: the node is the one observer there.
    root_observers = [i for i in ds.ContentSequence if i.RelationshipType == "HAS OBS CONTEXT"]
    assert next(i.TextValue for i in root_observers if i.ValueType == "TEXT") == NODE.ae_title
    assert sum(i.ValueType == "UIDREF" for i in root_observers) == 1
    assert named["classical-doppler"] >= {codes.TR_VMAX.value, codes.MV_E_VMAX.value}


@pytest.mark.peer
def test_ai_lvef_is_an_estimate_not_a_directly_measured_value(report: Report) -> None:
    dump = dsrdump(report.path)
    assert "79993-2" not in dump  # "single plane 4C (MOD)" would mislabel a regression
    assert "125316" not in dump  # "Directly measured": not what a network's estimate is
    post = dump.split('"Post-coordinated Measurements")')[1]
    for line in (
        '"Measurement Type")=(414135002,SCT,"Estimated")',
        '"Finding Site")=(87878005,SCT,',
        '"Finding Observation Type")=(125312,DCM,',
        '"Measured Property")=(70822001,SCT,"Cardiac ejection fraction")',
        '"Image Mode")=(399064001,SCT,',
        '"Image View")=(399214001,SCT,',
        '"Algorithm Family")=(123110,DCM,"Artificial Intelligence")',
        f'"Algorithm Name")="{MODEL.name}"',
        f'"Algorithm Version")="{MODEL.version} sha256:{MODEL.sha256}"',
    ):
        assert line in post, line
    modifiers = {
        codes.FINDING_SITE: 12305,
        codes.FINDING_OBSERVATION_TYPE: 12302,
        codes.MEASURED_PROPERTY: 12304,
        codes.IMAGE_MODE: 12224,
        codes.IMAGE_VIEW: 12226,
    }
    lvef = next(
        i for i in walk(report.dataset().ContentSequence)
        if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == codes.LVEF.value
    )  # fmt: skip
    items = {
        i.ConceptNameCodeSequence[0].CodeValue: i.ConceptCodeSequence[0]
        for i in lvef.ContentSequence
        if i.ValueType == "CODE"
    }
    for name, cid in modifiers.items():
        value = items[name.value]
        assert (value.CodingSchemeDesignator, value.CodeValue) in _members(cid), name
    assert items[codes.MEASUREMENT_TYPE.value].CodeValue == codes.ESTIMATED.value
    assert ("SCT", codes.ESTIMATED.value) in _members(3627)


def test_derived_and_qualified_values_are_post_coordinated_with_their_words(
    report: Report,
) -> None:
    ds = report.dataset()
    (post,) = _container(ds, "125302")
    nums = {
        n.ConceptNameCodeSequence[0].CodeValue: {
            c.ConceptNameCodeSequence[0].CodeValue: c for c in n.ContentSequence
        }
        for n in post.ContentSequence
        if n.ValueType == "NUM"
    }
    gradient = nums[codes.TR_PEAK_GRADIENT.value]
    assert gradient["125306"].ConceptCodeSequence[0].CodeValue == codes.CALCULATED.value
    assert gradient["370129005"].ConceptCodeSequence[0].CodeValue == "125218"
    assert gradient["112034"].TextValue.startswith("PG = 4 x (TR Vmax in m/s)^2")
    rwt = nums[codes.RATIO.value]
    assert rwt["121050"].TextValue == "Relative Wall Thickness"
    assert rwt["125309"].TextValue == "RWT"
    # The phantom's clips are named: the classical engine's values carry no qualification,
    # so they are pre-coordinated; a qualified one would be here with its Comment.
    model = _values(report)
    for value in model.values:
        if value.qualifiers:
            children = nums[CODING_5300[value.key].concept.value]
            assert children["121106"].TextValue == value.qualifiers[0]


def test_calipers_are_inferred_from_the_source_frame(report: Report) -> None:
    plax = report.sources[0]
    assert plax.result is not None
    ivsd = plax.result.pipelines[0].findings[0]
    scoord = next(
        i
        for i in walk(report.dataset().ContentSequence)
        if i.ValueType == "SCOORD"
        and [float(v) for v in i.GraphicData[:2]] == pytest.approx(ivsd.points[0], abs=1e-3)
    )
    assert scoord.RelationshipType == "INFERRED FROM" and scoord.GraphicType == "POLYLINE"
    ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == plax.header.SOPInstanceUID
    assert int(ref.ReferencedFrameNumber) == ivsd.frames[0] + 1


def test_every_5300_code_is_in_its_context_group() -> None:
    core = _members(12300)
    for name, coding in CODING_5300.items():
        if coding.pre_coordinated:
            for code in (coding.concept, coding.mmode):
                if code is not None:
                    assert core.get((code.scheme_designator, code.value)) == code.meaning, name
        where = coding.coordinates
        for code, cid in (
            (where.measurement_type, {12303, 3627}),
            (where.finding_site, {12305}),
            (where.observation_type, {12302}),
            (where.measured_property, {12304}),
            (where.phase, {12307}),
            (where.flow_direction, {12306}),
        ):
            if code is not None:
                assert any((code.scheme_designator, code.value) in _members(c) for c in cid), (
                    name,
                    code,
                )
    # Every value the report can hold has a TID 5300 coding.
    assert set(CODING_5300) == set(MEASURED) | set(DERIVED)
    for code in (
        codes.PRE_COORDINATED_MEASUREMENTS,
        codes.POST_COORDINATED_MEASUREMENTS,
        codes.SHORT_LABEL,
    ):
        assert code.value in {c for e in concepts["DCM"].values() for c in e}, code


@pytest.mark.peer
def test_m_mode_values_take_the_m_mode_codes(tmp_path: Path) -> None:
    header = source_header()
    header.PatientName = "SONOSITE^PLA"
    result = ClipResult(
        header.SOPInstanceUID,
        ViewDecision(View.MMODE, "region:m-mode", 1.0),
        (
            PipelineResult(
                "plax",
                PipelineStatus.OK,
                (Finding("LVPWd", 9.8, "mm", Provenance("classical", "0.3"), (3,)),),
            ),
        ),
    )
    sr = build_sr([SourceClip(header, result)], node=NODE, template="5300")
    path = tmp_path / "mmode.dcm"
    sr.save_as(path, enforce_file_format=True)
    assert dciodvfy(path) == ([], [])
    dump = dsrdump(path)
    assert f"NUM:({codes.LVPWD_MM.value},LN," in dump and '="0.98" (cm,UCUM' in dump
    assert '"Short Label")="LVPWd (MM)"' in dump
    assert "125302" not in dump
