"""The report model: which values are reported, withheld or qualified, how they read, what is
derived from them, and the sentences a reader gets instead of a missing value."""

from __future__ import annotations

import dataclasses
import re

import pytest

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
from echo_node.results import quality
from echo_node.results.report import (
    AlgorithmKind,
    Report,
    SourceClip,
    build_report,
)
from tests.test_results_data import (
    CLASSICAL,
    MODEL,
    a4c_result,
    doppler_result,
    plax_result,
    sibling,
    source_header,
    unknown_result,
)


def _with_flags(result: ClipResult, flags: dict[str, tuple[str, ...]]) -> ClipResult:
    pipelines = tuple(
        dataclasses.replace(
            p,
            findings=tuple(
                dataclasses.replace(f, flags=f.flags + flags.get(f.name, ())) for f in p.findings
            ),
        )
        for p in result.pipelines
    )
    return dataclasses.replace(result, pipelines=pipelines)


def _report(*results: ClipResult) -> Report:
    first = source_header()
    headers = [first] + [sibling(first) for _ in results[1:]]
    return build_report(
        [
            SourceClip(h, dataclasses.replace(r, sop_instance_uid=h.SOPInstanceUID))
            for h, r in zip(headers, results, strict=True)
        ]
    )


def test_values_read_as_a_cart_prints_them_and_as_the_sr_writes_them() -> None:
    report = _report(plax_result("x"), doppler_result("x", "CW"))
    shown = {v.key: (v.value, v.unit, v.display) for v in report.values}
    assert shown["IVSd"] == (1.05, "cm", "IVSd 1.05 cm")
    assert shown["LVIDd"] == (4.81, "cm", "LVIDd 4.81 cm")
    # 2.61 m/s from the pipeline: 261 cm/s in the SR, 2.61 m/s on screen.
    assert shown["TR_Vmax"] == (261.0, "cm/s", "TR Vmax 2.61 m/s")
    assert shown["MV_E"] == (82.0, "cm/s", "E 82 cm/s")
    assert report.value("MV_E_A") is not None
    assert report.value("MV_E_A").display == "E/A 1.34"  # type: ignore[union-attr]
    tr = report.value("TR_Vmax")
    assert tr is not None and tr.label == "Tricuspid Regurgitation Peak Velocity"


def test_a_velocity_is_a_speed_rounded_once() -> None:
    result = doppler_result("x", "CW")
    tr = dataclasses.replace(result.pipelines[0].findings[0], value=-254.47, unit="cm/s")
    pipeline = dataclasses.replace(result.pipelines[0], findings=(tr,))
    report = _report(dataclasses.replace(result, pipelines=(pipeline,)))
    (value,) = report.values
    assert (value.value, value.display) == (254.0, "TR Vmax 2.54 m/s")


def test_an_implausible_value_is_withheld_with_one_plain_sentence() -> None:
    flagged = _with_flags(plax_result("x"), {"IVSd": ("outside_physiological_range",)})
    report = _report(flagged)
    assert "IVSd" not in {v.key for v in report.values}
    assert report.notes[0] == (
        "Interventricular Septum Diastolic Thickness not reported: outside physiological limits."
    )
    # What it would have fed is not calculated, and says which input is missing.
    assert "Left Ventricle Mass not calculated: IVSd not reported." in report.notes
    assert report.value("RWT") is not None and report.value("FS") is not None


def test_a_qualified_value_is_reported_with_its_sentence_and_a_clean_one_wins() -> None:
    shaped = _with_flags(doppler_result("x", "CW"), {"TR_Vmax": ("flow_identified_by_shape",)})
    alone = _report(shaped)
    tr = next(v for v in alone.values if v.key == "TR_Vmax")
    assert tr.qualifiers == ("Flow identified by its Doppler pattern; the clip does not name it.",)
    assert not alone.notes
    both = _report(shaped, doppler_result("x", "CW"))
    tr = next(v for v in both.values if v.key == "TR_Vmax")
    assert tr.qualifiers == () and tr.source.sop_instance_uid == both.sources[1].sop_instance_uid
    (other,) = [a for a in both.alternatives if a.key == "TR_Vmax"]
    assert other.source.sop_instance_uid == both.sources[0].sop_instance_uid


def test_flags_that_only_describe_how_a_value_was_made_change_nothing() -> None:
    recorded = _with_flags(doppler_result("x", "CW"), {"TR_Vmax": ("beats_from_ecg",)})
    tr = next(v for v in _report(recorded).values if v.key == "TR_Vmax")
    assert tr.qualifiers == () and tr.flags == ("beats_from_ecg",)


def test_an_undecided_flag_withholds() -> None:
    odd = _with_flags(doppler_result("x", "CW"), {"MV_E": ("something_new",)})
    report = _report(odd)
    assert "MV_E" not in {v.key for v in report.values}
    assert "Mitral Valve E-Wave Peak Velocity not reported: a quality check did not pass." in (
        report.notes
    )


def test_fused_e_and_a_keep_e_and_withhold_a_and_e_over_a() -> None:
    fused = _with_flags(
        doppler_result("x", "PW"),
        {name: ("EA_fused",) for name in ("MV_E", "MV_A", "MV_E_A")},
    )
    report = _report(fused)
    e = next(v for v in report.values if v.key == "MV_E")
    assert e.qualifiers == ("E and A waves are fused.",)
    assert report.value("MV_A") is None and report.value("MV_E_A") is None
    assert "Mitral Valve A-Wave Peak Velocity not reported: E and A waves are fused." in (
        report.notes
    )
    assert "Mitral Valve E to A Ratio not calculated: A not reported." in report.notes


def test_derived_values_follow_their_formulas_from_the_reported_values() -> None:
    report = _report(plax_result("x"), doppler_result("x", "CW"))
    ivs, lvid, pw, lvids = 1.05, 4.81, 0.98, 3.2
    mass = 0.8 * 1.04 * ((ivs + lvid + pw) ** 3 - lvid**3) + 0.6
    expected = {
        "LV_mass": (round(mass), "g"),
        "RWT": (round(2 * pw / lvid, 2), "{ratio}"),
        "FS": (round((lvid - lvids) / lvid * 100), "%"),
        "TR_PG": (round(4 * 2.61**2), "mm[Hg]"),
        "MV_E_A": (round(82 / 61, 2), "{ratio}"),
    }
    derived = {d.key: d for d in report.derived}
    for key, (value, unit) in expected.items():
        assert derived[key].value == pytest.approx(value) and derived[key].unit == unit, key
        assert derived[key].formula
    assert derived["LV_mass"].display == f"LV mass {round(mass)} g"
    assert [i.key for i in derived["LV_mass"].inputs] == ["IVSd", "LVIDd", "LVPWd"]
    assert "4 x (TR Vmax in m/s)^2" in derived["TR_PG"].formula


def test_e_over_a_needs_e_and_a_of_one_clip_and_engine() -> None:
    e_only = doppler_result("x", "PW")
    keep_e = dataclasses.replace(
        e_only.pipelines[0],
        findings=tuple(f for f in e_only.pipelines[0].findings if f.name == "MV_E"),
    )
    a_elsewhere = doppler_result("x", "PW")
    keep_a = dataclasses.replace(
        a_elsewhere.pipelines[0],
        findings=tuple(f for f in a_elsewhere.pipelines[0].findings if f.name == "MV_A"),
    )
    report = _report(
        dataclasses.replace(e_only, pipelines=(keep_e,)),
        dataclasses.replace(a_elsewhere, pipelines=(keep_a,)),
    )
    assert report.value("MV_E") and report.value("MV_A") and report.value("MV_E_A") is None


def test_beats_carry_their_frames_points_values_and_the_aggregation() -> None:
    # The 2D pipelines give frames and two points a frame, the median over them.
    points = ((240.0, 30.0), (242.0, 50.5), (241.0, 31.0), (243.0, 52.0), (239.0, 29.0), (241, 49))
    ivs = Finding("IVSd", 1.05, "cm", MODEL, (3, 13, 23), points)
    # A Doppler engine that says per beat, and how it combined them.
    beats = (Beat(-280.0, 0, ((100.0, 300.0),)), Beat(-290.0, 0, ((300.0, 305.0),)))
    tr = Finding(
        "TR_Vmax",
        -290.0,
        "cm/s",
        CLASSICAL,
        (0,),
        ((100.0, 300.0), (300.0, 305.0)),
        beats=beats,
        aggregation=Aggregation.MAX,
    )
    result = ClipResult(
        "x",
        ViewDecision(View.PLAX, "test", 1.0),
        (PipelineResult("plax", PipelineStatus.OK, (ivs, tr)),),
    )
    report = _report(result)
    by_key = {v.key: v for v in report.values}
    assert by_key["IVSd"].aggregation is Aggregation.MEDIAN
    assert [(b.frame, b.points) for b in by_key["IVSd"].beats] == [
        (3, points[0:2]),
        (13, points[2:4]),
        (23, points[4:6]),
    ]
    assert by_key["TR_Vmax"].aggregation is Aggregation.MAX
    assert [(b.frame, b.value) for b in by_key["TR_Vmax"].beats] == [(0, 280.0), (0, 290.0)]
    single = Finding("LVIDd", 4.8, "cm", MODEL, (3,), ((250.0, 52.0), (254.0, 120.0)))
    one = dataclasses.replace(
        result, pipelines=(PipelineResult("plax", PipelineStatus.OK, (single,)),)
    )
    assert _report(one).values[0].aggregation is Aggregation.SINGLE


def test_provenance_names_the_exact_weights() -> None:
    published = dataclasses.replace(MODEL, published=True)
    report = _report(a4c_result("x", installed=True))
    (lvef,) = report.values
    made = lvef.algorithm
    assert made.kind is AlgorithmKind.AI and made.version_text == f"1.0 sha256:{'ab' * 32}"
    assert made.weights_text == "no published digest is known for this model's weights"
    finding = dataclasses.replace(a4c_result("x", installed=True).pipelines[0].findings[0])
    for provenance, words in (
        (published, "weights match the digest published by the model's authors"),
        (dataclasses.replace(MODEL, published=False), "not the published checkpoint"),
    ):
        result = ClipResult(
            "x",
            ViewDecision(View.A4C, "test", 1.0),
            (
                PipelineResult(
                    "a4c",
                    PipelineStatus.OK,
                    (dataclasses.replace(finding, provenance=provenance),),
                ),
            ),
        )
        text = _report(result).values[0].algorithm.weights_text
        assert text is not None and words in text
    classical = _report(doppler_result("x", "CW")).values[0].algorithm
    assert classical.kind is AlgorithmKind.CLASSICAL and classical.weights_text is None


def test_patient_characteristics_and_heart_rate_from_the_headers() -> None:
    first = source_header()
    first.PatientSize = "1.75"
    first.PatientWeight = "70"
    first.HeartRate = 60
    second = sibling(first)
    second.HeartRate = 63
    report = build_report(
        [
            SourceClip(first, plax_result(first.SOPInstanceUID)),
            SourceClip(second, doppler_result(second.SOPInstanceUID, "CW")),
        ]
    )
    found = {c.key: c for c in report.characteristics}
    assert (found["height"].value, found["weight"].value) == (175.0, 70.0)
    bsa = 0.007184 * 70**0.425 * 175**0.725
    assert found["bsa"].value == pytest.approx(round(bsa, 2))
    assert found["bsa"].formula is not None and "DuBois" in found["bsa"].formula
    assert (found["heart_rate"].value, found["heart_rate"].display) == (62.0, "HR 62 bpm")
    # Absent or implausible (this SonoSite file says HeartRate 0): left out.
    bare = build_report([SourceClip(source_header(), plax_result("y"))], [])
    assert bare.characteristics == ()


def test_not_measured_in_clinical_words_without_uids_flags_or_commands() -> None:
    report = _report(
        plax_result("x"),
        a4c_result("x", installed=False),
        unknown_result("x"),
        _with_flags(doppler_result("x", "CW"), {"MV_E": ("outside_physiological_range",)}),
    )
    number = report.sources[1].instance_number
    assert report.not_measured == (
        f"Clip {number} (apical four-chamber): LV ejection fraction not measured; "
        "the AI model is not installed.",
        f"Clip {number}: view not recognised; no measurement made.",
    )
    for sentence in report.notes:
        assert not re.search(r"\d+\.\d+\.\d+\.\d+", sentence), sentence  # no UIDs
        assert "echo-node" not in sentence and "_" not in sentence, sentence
        assert sentence.endswith(".")


def test_every_flag_the_pipelines_raise_is_decided() -> None:
    """Scans ai/ for the flag strings the pipelines put on findings."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "ai"
    files = [*root.joinpath("pipelines").glob("*.py"), root / "plausibility.py"]
    files.append(root / "models" / "normalisation.py")
    flags: set[str] = set()
    not_flags = {"e_lat", "e_med", "doppler_neural", "measurements_2d"}
    pattern = re.compile(r"[A-Za-z]+(_[a-z0-9]+)+")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            strings: list[ast.expr] = []
            if isinstance(node, ast.Tuple):
                strings = list(node.elts)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "append":
                strings = list(node.args)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and (t.id.endswith("FLAG") or t.id == "OUTSIDE")
                for t in node.targets
            ):
                strings = [node.value]
            for item in strings:
                text = item.value if isinstance(item, ast.Constant) else None
                if isinstance(text, str) and pattern.fullmatch(text) and text not in not_flags:
                    flags.add(text)
    assert len(flags) >= 20
    assert flags <= set(quality.RULES), flags - set(quality.RULES)
