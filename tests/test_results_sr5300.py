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
from tests.test_results_data import (
    CLASSICAL,
    MODEL,
    NODE,
    dciodvfy,
    dsrdump,
    source_header,
    walk,
)

NUM = re.compile(r'NUM:\(([^,]+),(LN|99ECHONODE),"([^"]*)"\)="([^"]+)" \(([^,]+),UCUM')


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


def _written(report: Report) -> list[tuple[str, float, str]]:
    """(name, value, unit) of every finding of a pipeline that ran, as the SR should write it."""
    factor = {("m/s", "cm/s"): 100.0}
    expected = []
    for source in report.sources:
        assert source.result is not None
        for pipeline in source.result.pipelines:
            if pipeline.status is not PipelineStatus.OK:  # the neural Doppler models are absent
                assert pipeline.status is PipelineStatus.MODEL_NOT_INSTALLED, pipeline
                continue
            for f in pipeline.findings:
                coding = codes.FINDING_CODING_5300.get(f.name)
                if coding is not None:
                    value = f.value * factor.get((f.unit, coding.unit.value), 1.0)
                    if coding.unit.value == "cm/s":
                        value = abs(value)
                    expected.append((f.name, value, coding.unit.value))
    return expected


def test_5300_sr_validates_and_names_its_template(report: Report) -> None:
    errors, _warnings = dciodvfy(report.path)
    assert errors == []
    ds = report.dataset()
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "5300"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "125200"
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    (scheme,) = ds.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == codes.LOCAL_SCHEME


def test_dsrdump_shows_containers_and_cid_12300_codes_with_values(report: Report) -> None:
    dump = dsrdump(report.path)
    assert '(125301,DCM,"Pre-coordinated Measurements")' in dump
    assert '(125302,DCM,"Post-coordinated Measurements")' in dump
    assert "Finding Site" not in dump.split("Post-coordinated")[0]  # no TID 5200 sections
    written = [(m[0], m[2], float(m[3]), m[4]) for m in NUM.findall(dump)]
    core = _members(12300)
    expected = _written(report)
    names = {name for name, _, _ in expected}
    # The classical engine measured both spectral clips; the PLAX and A4C values were given.
    assert {"TR_Vmax", "MV_E", "MV_A", "MV_E_A", "IVSd", "LVIDd", "LVPWd", "LVEF"} <= names
    assert len(written) == len(expected)
    for name, value, unit in expected:
        coding = codes.FINDING_CODING_5300[name]
        (match,) = [w for w in written if w[0] == coding.concept.value]
        assert match[2] == pytest.approx(value, rel=1e-5), name
        assert match[3] == unit, name
        if isinstance(coding, codes.PreCoordinated):
            assert core[("LN", match[0])] == match[1], name  # a CID 12300 member, its meaning
        else:
            assert ("LN", match[0]) not in core  # the AI LVEF is not a CID 12300 concept
    lvidd = codes.LVIDD_2D
    assert f'NUM:({lvidd.value},LN,"{lvidd.meaning}")' in dump
    assert '"Short Label")="LVPWd (2D)"' in dump
    assert '(80031-8,LN,"Left ventricular posterior wall diastolic thickness")' in dump


def test_ai_lvef_is_post_coordinated_not_method_of_disks(report: Report) -> None:
    dump = dsrdump(report.path)
    assert "79993-2" not in dump  # "single plane 4C (MOD)" would mislabel a regression
    post = dump.split('"Post-coordinated Measurements")')[1]
    for line in (
        '"Measurement Type")=(125316,DCM,"Directly measured")',
        '"Finding Site")=(87878005,SCT,',
        '"Finding Observation Type")=(125312,DCM,',
        '"Measured Property")=(70822001,SCT,"Cardiac ejection fraction")',
        f'"Measurement Method")=(NNVR,{codes.LOCAL_SCHEME},',
        '"Image Mode")=(399064001,SCT,',
        '"Image View")=(399214001,SCT,',
        f'"Algorithm Name")="{MODEL.name}"',
        f'"Algorithm Version")="{MODEL.version}"',
    ):
        assert line in post, line
    modifiers = {
        codes.MEASUREMENT_TYPE: 12303,
        codes.FINDING_SITE: 12305,
        codes.FINDING_OBSERVATION_TYPE: 12302,
        codes.MEASURED_PROPERTY: 12304,
        codes.IMAGE_MODE: 12224,
        codes.IMAGE_VIEW: 12226,
    }
    lvef = report.dataset()
    items = {
        i.ConceptNameCodeSequence[0].CodeValue: i.ConceptCodeSequence[0]
        for i in walk(lvef.ContentSequence)
        if i.ValueType == "CODE"
    }
    for name, cid in modifiers.items():
        value = items[name.value]
        assert (value.CodingSchemeDesignator, value.CodeValue) in _members(cid), name


def test_provenance_in_observers_and_contributing_equipment(report: Report) -> None:
    ds = report.dataset()
    observers = [
        i.TextValue
        for i in ds.ContentSequence
        if i.RelationshipType == "HAS OBS CONTEXT"
        and i.ValueType == "TEXT"
        and i.ConceptNameCodeSequence[0].CodeValue == "121015"  # Device Observer Model Name
    ]
    provenances = {
        f.provenance
        for s in report.sources
        if s.result is not None
        for p in s.result.pipelines
        for f in p.findings
        if f.name in codes.FINDING_CODING_5300
    }
    assert observers[0] == NODE.model_name  # the node first, then each algorithm once
    assert sorted(observers[1:]) == sorted(f"{p.name} {p.version}" for p in provenances)
    equipment = {e.ManufacturerModelName: e for e in ds.ContributingEquipmentSequence}
    assert equipment[MODEL.name].SoftwareVersions == MODEL.version
    assert (
        MODEL.sha256 is not None and MODEL.sha256 in equipment[MODEL.name].ContributionDescription
    )
    pre = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "125301")
    # TID 5301 is non-extensible: a pre-coordinated value has only its label and source.
    for num in pre.ContentSequence:
        children = {c.ConceptNameCodeSequence[0].CodeValue for c in num.ContentSequence}
        assert children == {"125309", "121112"}


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


def test_a_name_without_a_5300_code_is_stated(report: Report) -> None:
    texts = [
        i.TextValue
        for i in walk(report.dataset().ContentSequence)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "121106"
    ]
    plax_uid = report.sources[0].header.SOPInstanceUID
    (stated,) = [t for t in texts if "E_e_prime" in t]
    assert plax_uid in stated and "TID 5300" in stated


def test_every_5300_code_is_in_its_context_group() -> None:
    core = _members(12300)
    for name, coding in codes.FINDING_CODING_5300.items():
        if isinstance(coding, codes.PreCoordinated):
            for code in (coding.concept, coding.mmode):
                if code is not None:
                    assert core.get((code.scheme_designator, code.value)) == code.meaning, name
    # The names in use and announced by the pipelines all have a code.
    for name in ("AoRoot", "AoAsc", "LAd", "RVbase", "MR_Vmax", "LVOT_Vmax", "e_lat", "e_med"):
        assert name in codes.FINDING_CODING_5300
    for code in (
        codes.PRE_COORDINATED_MEASUREMENTS,
        codes.POST_COORDINATED_MEASUREMENTS,
        codes.SHORT_LABEL,
    ):
        assert code.value in {c for e in concepts["DCM"].values() for c in e}, code


def test_m_mode_values_take_the_m_mode_codes(tmp_path: Path) -> None:
    header = source_header()
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
    assert dciodvfy(path)[0] == []
    dump = dsrdump(path)
    assert f"NUM:({codes.LVPWD_MM.value},LN," in dump and '="0.98" (cm,UCUM' in dump
    assert '"Short Label")="LVPWd (MM)"' in dump
    assert "125302" not in dump and "CodingSchemeIdentification" not in str(sr)
