"""The phantom exam: a lab's mix of views in one study, each routed by the node's view rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ai.decode import load_clip
from ai.findings import View
from ai.phantom.exam import exam_plan, generate_exam
from ai.views import decide_view

SMALL = {"rows": 240, "columns": 320, "cycles": 1, "frame_rate": 20.0}
ROUTED = {"plax": View.PLAX, "a4c": View.A4C, "tr_cw": View.DOPPLER, "mv_pw": View.DOPPLER}


def test_a_60_clip_exam_holds_the_measured_views_and_many_others() -> None:
    plan = exam_plan(60)
    kinds = Counter(item.kind for item in plan)
    assert kinds == {"plax": 8, "a4c": 7, "tr_cw": 5, "mv_pw": 5, "other": 35}
    others = Counter(item.description for item in plan if item.kind == "other")
    assert set(others) == {"PSAX", "A2C", "A3C", "A5C", "SUBCOSTAL", "SSN"}
    assert plan[0].kind == "plax" and plan[-1].description == "SSN"  # protocol order
    small = Counter(item.kind for item in exam_plan(6))
    assert small == {"plax": 1, "a4c": 1, "tr_cw": 1, "mv_pw": 1, "other": 2}
    with pytest.raises(ValueError, match="at least 4 clips"):
        exam_plan(3)


def test_every_clip_is_routed_by_the_view_rules_and_is_its_own_acquisition(
    tmp_path: Path,
) -> None:
    paths = generate_exam(tmp_path / "exam", seed=4, clips=12, **SMALL)  # type: ignore[arg-type]
    listing = json.loads((tmp_path / "exam" / "exam.json").read_text())["clips"]
    assert [entry["file"] for entry in listing] == [path.name for path in paths]
    studies, sops = set(), set()
    first_frames: dict[str, list[np.ndarray]] = {}
    for path, entry in zip(paths, listing, strict=True):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        studies.add(header.StudyInstanceUID)
        sops.add(header.SOPInstanceUID)
        assert header.SeriesDescription == entry["series_description"]
        clip = load_clip(path)
        decision = decide_view(clip, None)
        assert decision.view == ROUTED.get(entry["kind"], View.OTHER), entry
        first_frames.setdefault(entry["kind"], []).append(np.asarray(clip.frames[0]))
    assert len(studies) == 1 and len(sops) == len(paths)
    for kind in ("plax", "other"):  # several clips of a kind: other pixels each time
        frames = first_frames[kind]
        assert len(frames) >= 2 and not np.array_equal(frames[0], frames[1]), kind
    again = generate_exam(tmp_path / "again", seed=4, clips=12, **SMALL)  # type: ignore[arg-type]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again, strict=True))


def test_the_phantom_command_writes_an_exam(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from echo_node.cli import app

    args = ["phantom", "--out", str(tmp_path), "--seed", "5", "--exam", "6", "--rows", "160"]
    args += ["--columns", "200", "--cycles", "1", "--frame-rate", "10"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in (tmp_path / "exam-5").glob("*.dcm"))
    assert written == [
        "001_plax.dcm",
        "002_other.dcm",
        "003_a4c.dcm",
        "004_other.dcm",
        "005_mv_pw.dcm",
        "006_tr_cw.dcm",
    ]
