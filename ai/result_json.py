"""A ClipResult to plain JSON and back, without loss: how a result is kept on record.

Non-finite numbers become null (strict JSON, and PostgreSQL's json type, have no NaN) and come
back as NaN; tuples come back as tuples, enums as enums.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ai.findings import (
    Aggregation,
    Beat,
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)


def result_to_json(result: ClipResult) -> dict[str, Any]:
    document: dict[str, Any] = _strict(dataclasses.asdict(result))
    return document


def result_from_json(data: Mapping[str, Any]) -> ClipResult:
    view = data["view"]
    return ClipResult(
        sop_instance_uid=data["sop_instance_uid"],
        view=ViewDecision(**{**view, "view": View(view["view"])}),
        pipelines=tuple(_pipeline(p) for p in data["pipelines"]),
        frame_count=data["frame_count"],
        frame_time_ms=data["frame_time_ms"],
        message=data["message"],
        decoder=data.get("decoder", ""),  # results kept before the decoder was recorded
    )


def _pipeline(data: Mapping[str, Any]) -> PipelineResult:
    return PipelineResult(
        pipeline=data["pipeline"],
        status=PipelineStatus(data["status"]),
        findings=tuple(_finding(f) for f in data["findings"]),
        message=data["message"],
        series={name: tuple(_number(v) for v in values) for name, values in data["series"].items()},
    )


def _finding(data: Mapping[str, Any]) -> Finding:
    spread = data["spread"]
    aggregation = data.get("aggregation")  # absent from results recorded before it existed
    return Finding(
        name=data["name"],
        value=_number(data["value"]),
        unit=data["unit"],
        provenance=Provenance(**data["provenance"]),
        frames=tuple(data["frames"]),
        points=tuple((_number(x), _number(y)) for x, y in data["points"]),
        cardiac_phase=data["cardiac_phase"],
        flags=tuple(data["flags"]),
        spread=None if spread is None else (_number(spread[0]), _number(spread[1])),
        beats=tuple(_beat(b) for b in data.get("beats", ())),
        aggregation=None if aggregation is None else Aggregation(aggregation),
    )


def _beat(data: Mapping[str, Any]) -> Beat:
    return Beat(
        value=_number(data["value"]),
        frame=int(data["frame"]),
        points=tuple((_number(x), _number(y)) for x, y in data["points"]),
    )


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _strict(value: Any) -> Any:
    if isinstance(value, np.generic):  # a NumPy scalar a pipeline left in a value or index
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    if isinstance(value, View | PipelineStatus | Aggregation):
        return value.value
    return value
