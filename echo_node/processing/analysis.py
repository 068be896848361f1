"""One clip through ai/: decode, decide the view, run the view's pipelines, each step timed.

No database here: the caller reads what it needs first and writes afterwards, so no write lock
is held while models run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset

from ai.analyze import run_pipelines
from ai.clip import ArrayFrames, Clip
from ai.decode import DecodeError, load_clip
from ai.findings import ClipResult, PipelineResult, PipelineStatus, View, ViewDecision
from ai.pipelines import PipelineFn, pipelines_for
from ai.pipelines.all import registered
from ai.views import Classifier, decide_view

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipInput:
    """A processable instance as read from the database before any computing starts."""

    instance_id: int
    sop_instance_uid: str
    path: Path


@dataclass
class ClipRun:
    """What one clip gave: its header, the result, its decoded frames and the step timings."""

    source: ClipInput
    header: Dataset
    result: ClipResult
    frames: npt.NDArray[np.uint8] | None
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """A pipeline ran to the end on this clip (its values may still be few)."""
        return any(p.status is PipelineStatus.OK for p in self.result.pipelines)

    @property
    def has_findings(self) -> bool:
        return any(p.status is PipelineStatus.OK and p.findings for p in self.result.pipelines)


def pipeline_name(function: PipelineFn) -> str:
    """The name a reprocess filter uses: the function name without run_ / _pipeline
    (run_plax → plax, run_a4c_amyloid → a4c_amyloid, doppler_pipeline → doppler)."""
    name = function.__name__
    name = name.removeprefix("run_")
    return name.removesuffix("_pipeline")


def analyse_clip(
    source: ClipInput,
    models: Any,
    classifier: Classifier | None,
    min_confidence: float,
    only: Collection[str] | None,
) -> ClipRun:
    """Decode every frame once (pipelines and the overlay share them), then view and pipelines.

    `only`: the pipeline names a reprocess asked for; None runs every pipeline of the view.
    """
    uid = source.sop_instance_uid
    steps: list[dict[str, Any]] = []

    started = time.perf_counter()
    header = pydicom.dcmread(source.path, stop_before_pixels=True)
    try:
        lazy = load_clip(source.path)
        frames = np.stack([lazy.frames[i] for i in range(len(lazy))]) if len(lazy) else None
    except (DecodeError, AttributeError, KeyError, ValueError) as error:
        # Not an image ai/ can read (e.g. a report in a US series): on record, not processed.
        steps.append(_step("decode", uid, started, error=type(error).__name__))
        logger.info("%s: not decodable (%s), not processed", uid, type(error).__name__)
        reason = f"cannot decode: {type(error).__name__}: {error}"
        decision = ViewDecision(View.UNKNOWN, "decode", 0.0, reason=reason)
        result = ClipResult(sop_instance_uid=uid, view=decision, message=reason)
        return ClipRun(source, header, result, None, steps)
    clip = lazy if frames is None else dataclasses.replace(lazy, frames=ArrayFrames(frames))
    steps.append(_step("decode", uid, started))

    started = time.perf_counter()
    decision = decide_view(clip, classifier, min_confidence)
    steps.append(_step("view", uid, started, view=decision.view.value))

    functions = _selected(decision.view, only)
    if not functions:
        result = run_pipelines(clip, decision, models)  # no pipeline: says why, runs nothing
        if only is not None and pipelines_for(decision.view.value):
            result = dataclasses.replace(
                result,
                pipelines=(),
                message=f"not processed in this run: limited to pipelines {', '.join(only)}",
            )
    else:
        results = []
        for function in functions:
            started = time.perf_counter()
            outcome = _run(function, clip, models)
            steps.append(
                _step(f"pipeline:{outcome.pipeline}", uid, started, status=outcome.status.value)
            )
            results.append(outcome)
        result = ClipResult(
            sop_instance_uid=clip.sop_instance_uid,
            view=decision,
            pipelines=tuple(results),
            frame_count=len(clip),
            frame_time_ms=clip.frame_time_ms,
        )
    return ClipRun(source, header, result, frames, steps)


def _selected(view: View, only: Collection[str] | None) -> tuple[PipelineFn, ...]:
    registered()
    functions = pipelines_for(view.value)
    if only is None:
        return functions
    return tuple(f for f in functions if _wanted(pipeline_name(f), only))


def _wanted(name: str, only: Collection[str]) -> bool:
    """A filter entry names a pipeline or its family: "a4c" selects a4c_amyloid too."""
    return any(name == entry or name.startswith(f"{entry}_") for entry in only)


def _run(function: PipelineFn, clip: Clip, models: Any) -> PipelineResult:
    """A fault in one pipeline becomes its failed result, so the clip's others still run."""
    try:
        return function(clip, models)
    except Exception as error:
        logger.exception("pipeline %s failed on %s", function.__name__, clip.sop_instance_uid)
        return PipelineResult(
            pipeline=pipeline_name(function),
            status=PipelineStatus.FAILED,
            message=f"{type(error).__name__}: {error}",
        )


def _step(name: str, uid: str, started: float, **extra: Any) -> dict[str, Any]:
    seconds = round(time.perf_counter() - started, 4)
    return {"step": name, "sop_instance_uid": uid, "seconds": seconds, **extra}
