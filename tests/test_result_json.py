"""A ClipResult kept on record as JSON comes back equal: what a limited reprocess carries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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
from ai.phantom import generate_study
from ai.result_json import result_from_json, result_to_json


def _round_trip(result: ClipResult) -> ClipResult:
    # allow_nan=False: the stored form must be strict JSON (PostgreSQL's json refuses NaN).
    return result_from_json(json.loads(json.dumps(result_to_json(result), allow_nan=False)))


def test_a_measured_phantom_clip_round_trips(tmp_path: Path) -> None:
    generate_study(tmp_path, 5, rows=240, columns=320, cycles=1, frame_rate=15.0)
    result = analyze(tmp_path / "mv_pw.dcm")
    assert {f.name for p in result.pipelines for f in p.findings} >= {"MV_E", "MV_A"}
    assert _round_trip(result) == result


def test_nan_numpy_scalars_and_enums_come_back_as_such() -> None:
    finding = Finding(
        name="LVIDd",
        value=np.float64(4.2),
        unit="cm",
        provenance=Provenance("echonet-lvh-plax", "v1", "ab" * 32),
        frames=(np.int64(3),),  # type: ignore[arg-type]
        points=((1.5, math.nan),),
        cardiac_phase="diastole",
        flags=("outside_training_layout",),
        spread=(4.0, 4.4),
    )
    result = ClipResult(
        sop_instance_uid="1.2.3",
        view=ViewDecision(View.PLAX, "ViewCodeSequence", 1.0, label="PLAX"),
        pipelines=(
            PipelineResult("plax", PipelineStatus.OK, (finding,), series={"LVID": (1.0, math.nan)}),
            PipelineResult("a4c_amyloid", PipelineStatus.NOT_APPLICABLE, message="too short"),
        ),
        frame_count=4,
        frame_time_ms=None,
    )
    back = _round_trip(result)
    assert back.view.view is View.PLAX and back.pipelines[1].status is PipelineStatus.NOT_APPLICABLE
    (kept,) = back.pipelines[0].findings
    assert kept.value == 4.2 and kept.frames == (3,) and kept.spread == (4.0, 4.4)
    assert kept.points[0][0] == 1.5 and math.isnan(kept.points[0][1])
    assert math.isnan(back.pipelines[0].series["LVID"][1])
    assert back.pipelines[1] == result.pipelines[1]
