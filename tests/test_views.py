"""ai.views: the decision order (regions, CID 12226 codes, keywords, classifier, unknown)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.decode import load_clip
from ai.findings import View, ViewDecision
from ai.views import decide_view

MMODE = UltrasoundRegion(2, 1, 0, 0, 100, 99, 199, 4, 3, 0.01, 0.05)
TISSUE = UltrasoundRegion(1, 1, 0, 0, 0, 99, 99, 3, 3, 0.05, 0.05)


def _clip(regions: tuple[UltrasoundRegion, ...] = (), **metadata: object) -> Clip:
    frames = ArrayFrames(np.zeros((1, 200, 100, 3), dtype=np.uint8))
    return Clip(frames=frames, rows=200, columns=100, regions=regions, metadata=dict(metadata))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ai.phantom import generate_study

    out = tmp_path_factory.mktemp("phantom")
    generate_study(out, 5, rows=240, columns=320, cycles=1, frame_rate=20, view_codes=True)
    return out


@pytest.mark.parametrize(("name", "mode"), [("tr_cw", "CW"), ("mv_pw", "PW")])
def test_phantom_doppler_routes_to_doppler(phantom: Path, name: str, mode: str) -> None:
    decision = decide_view(load_clip(phantom / f"{name}.dcm"))
    assert decision.view == View.DOPPLER
    assert decision.decided_by == "region:spectral" and decision.confidence == 1.0
    assert decision.doppler_mode == mode
    assert f"RegionDataType {3 if mode == 'PW' else 4}" in decision.reason


@pytest.mark.parametrize(("name", "view"), [("plax", View.PLAX), ("a4c", View.A4C)])
def test_phantom_view_codes(phantom: Path, name: str, view: View) -> None:
    decision = decide_view(load_clip(phantom / f"{name}.dcm"))
    assert decision.view == view and decision.decided_by == "ViewCodeSequence"
    assert "CID 12226" in decision.reason


def test_mmode_region() -> None:
    decision = decide_view(_clip((TISSUE, MMODE), SeriesDescription="PLAX"))
    assert decision.view == View.MMODE and decision.decided_by == "region:mmode"


@pytest.mark.parametrize(
    ("codes", "view", "label"),
    [
        ((("SCT", "399232001", "Apical two chamber"),), View.OTHER, "Apical two chamber"),
        ((("SRT", "G-A19C", "Apical four chamber"),), View.A4C, "Apical four chamber"),
        ((("SRT", "G-0396", ""),), View.PLAX, "Parasternal long axis"),
        ((("DCM", "130681", "A4C RV focused"),), View.OTHER, "Apical four chamber RV Focused"),
    ],
)
def test_view_codes(codes: tuple[tuple[str, str, str], ...], view: View, label: str) -> None:
    decision = decide_view(_clip(view_codes=codes, SeriesDescription="PLAX"))
    assert (decision.view, decision.label, decision.decided_by) == (view, label, "ViewCodeSequence")


def test_code_outside_cid_12226_is_ignored() -> None:
    decision = decide_view(_clip(view_codes=(("SCT", "80891009", "Heart"),), ImageComments="A4C"))
    assert decision.view == View.A4C and decision.decided_by == "keyword:ImageComments"


@pytest.mark.parametrize(
    ("text", "view", "label"),
    [
        ("Apical 4CH", View.A4C, "A4C"),
        ("ADULT ECHO A4C LV", View.A4C, "A4C"),
        ("apical four chamber", View.A4C, "A4C"),
        ("PLAX zoom", View.PLAX, "PLAX"),
        ("Parasternal long axis", View.PLAX, "PLAX"),
        ("A2C", View.OTHER, "A2C"),
        ("PSAX pap", View.OTHER, "PSAX"),
    ],
)
def test_series_description_keywords(text: str, view: View, label: str) -> None:
    decision = decide_view(_clip(SeriesDescription=text))
    assert (decision.view, decision.label) == (view, label)
    assert decision.decided_by == "keyword:SeriesDescription" and decision.confidence == 0.9


def test_no_rule_and_no_classifier_is_unknown_with_the_reason() -> None:
    decision = decide_view(_clip(SeriesDescription="Echo 2D"))
    assert decision.view == View.UNKNOWN and decision.confidence == 0.0
    assert "no view classifier installed" in decision.reason


def test_real_file_without_rule_is_unknown() -> None:
    path = get_testdata_file("US1_UNCR.dcm")
    assert path is not None
    decision = decide_view(load_clip(path))
    assert decision.view == View.UNKNOWN and "no spectral or M-mode region" in decision.reason


def test_classifier_is_consulted_after_the_rules() -> None:
    seen: list[Clip] = []

    def classifier(clip: Clip) -> ViewDecision | None:
        seen.append(clip)
        return ViewDecision(View.OTHER, "echoprime", 0.8, label="A2C")

    assert decide_view(_clip(SeriesDescription="PLAX"), classifier).view == View.PLAX
    assert not seen  # a rule decided: the classifier was not run
    decision = decide_view(_clip(), classifier)
    assert (decision.view, decision.label, decision.decided_by) == (View.OTHER, "A2C", "echoprime")
    assert len(seen) == 1


def test_low_confidence_becomes_unknown() -> None:
    def unsure(clip: Clip) -> ViewDecision:
        return ViewDecision(View.A4C, "echoprime", 0.31, label="A4C")

    decision = decide_view(_clip(), unsure, min_confidence=0.5)
    assert decision.view == View.UNKNOWN and decision.decided_by == "echoprime"
    assert "0.31" in decision.reason and "below the minimum 0.50" in decision.reason
    assert decide_view(_clip(), unsure, min_confidence=0.3).view == View.A4C
    # The minimum applies to keyword rules too (confidence 0.9).
    assert decide_view(_clip(SeriesDescription="A4C"), min_confidence=0.95).view == View.UNKNOWN


def test_classifier_without_a_decision() -> None:
    decision = decide_view(_clip(), lambda clip: None)
    assert decision.view == View.UNKNOWN and "classifier gave no decision" in decision.reason
