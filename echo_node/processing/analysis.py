"""One clip through ai/: decode, decide the view, run the view's pipelines, each step timed.

No database here: the caller reads what it needs first and writes afterwards, so no write lock
is held while models run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset

from ai.analyze import run_pipeline, run_pipelines
from ai.clip import Frame, FrameSource
from ai.decode import DecodeError, load_clip
from ai.findings import ClipResult, PipelineResult, PipelineStatus, View, ViewDecision
from ai.model_source import ModelSource
from ai.pipelines import PipelineFn, pipeline_name, pipelines_for
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


def analyse_clip(
    source: ClipInput,
    models: ModelSource | None,
    classifier: Classifier | None,
    min_confidence: float,
    only: Collection[str] | None,
    on_step: Callable[[str], None] | None = None,
) -> ClipRun:
    """Decide the view and run its pipelines over frames decoded once, on first use.

    Frames are decoded when something reads them (the view classifier, a pipeline, the overlay),
    so a clip whose pipelines cannot run costs only its header and first frame. The "decode"
    step counts every decoding second; pipeline steps count their own time without it.
    `only`: the pipeline names a reprocess asked for; None runs every pipeline of the view.
    `on_step` hears the name of each step as it starts (progress of the job).
    """
    uid = source.sop_instance_uid
    steps: list[dict[str, Any]] = []
    announce = on_step or (lambda _: None)
    announce("decode")

    started = time.perf_counter()
    header = pydicom.dcmread(source.path, stop_before_pixels=True)
    try:
        lazy = load_clip(source.path)
        cache = CachedFrames(lazy.frames)
        if len(cache):
            cache[0]  # an undecodable clip shows itself here, before any model sees it
    except (DecodeError, AttributeError, KeyError, ValueError) as error:
        # Not an image ai/ can read (e.g. a report in a US series): on record, not processed.
        steps.append(_step("decode", uid, started, error=type(error).__name__))
        logger.info(
            "clip not decodable (%s), not processed",
            type(error).__name__,
            extra={"sop_instance_uid": uid},
        )
        reason = f"cannot decode: {type(error).__name__}: {error}"
        decision = ViewDecision(View.UNKNOWN, "decode", 0.0, reason=reason)
        result = ClipResult(sop_instance_uid=uid, view=decision, message=reason)
        return ClipRun(source, header, result, None, steps)
    header_seconds = time.perf_counter() - started - cache.seconds
    clip = dataclasses.replace(lazy, frames=cache)

    announce("view")
    started, decoded = time.perf_counter(), cache.seconds
    decision = decide_view(clip, classifier, min_confidence)
    steps.append(
        _step("view", uid, started, decoded=cache.seconds - decoded, view=decision.view.value)
    )

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
        results: list[PipelineResult] = []
        for function in functions:
            announce(f"pipeline:{pipeline_name(function)}")
            started, decoded = time.perf_counter(), cache.seconds
            outcome = run_pipeline(function, clip, models, tuple(results))
            steps.append(
                _step(
                    f"pipeline:{outcome.pipeline}",
                    uid,
                    started,
                    decoded=cache.seconds - decoded,
                    status=outcome.status.value,
                )
            )
            results.append(outcome)
        result = ClipResult(
            sop_instance_uid=clip.sop_instance_uid,
            view=decision,
            pipelines=tuple(results),
            frame_count=len(clip),
            frame_time_ms=clip.frame_time_ms,
            decoder=clip.decoder,
        )
    run = ClipRun(source, header, result, None, steps)
    if run.has_findings and len(cache):
        run.frames = cache.stack()  # the overlay burns the findings into every frame
    steps.insert(
        0,
        {
            "step": "decode",
            "sop_instance_uid": uid,
            "seconds": round(header_seconds + cache.seconds, 4),
        },
    )
    return run


class CachedFrames:
    """Frames decoded on first use and kept, so pipelines and the overlay decode once; counts
    the seconds spent decoding so the job's steps can tell decoding from computing."""

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._frames: dict[int, Frame] = {}
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Frame:
        if index < 0:
            index += len(self)
        frame = self._frames.get(index)
        if frame is None:
            started = time.perf_counter()
            frame = self._source[index]
            self.seconds += time.perf_counter() - started
            self._frames[index] = frame
        return frame

    def stack(self) -> npt.NDArray[np.uint8]:
        return np.stack([self[i] for i in range(len(self))])


def _selected(view: View, only: Collection[str] | None) -> tuple[PipelineFn, ...]:
    functions = pipelines_for(view.value)
    if only is None:
        return functions
    return tuple(f for f in functions if wanted(pipeline_name(f), only))


def wanted(name: str, only: Collection[str]) -> bool:
    """A filter entry names a pipeline or its family: "a4c" selects a4c_amyloid too."""
    return any(name == entry or name.startswith(f"{entry}_") for entry in only)


def _step(
    name: str, uid: str, started: float, decoded: float = 0.0, **extra: Any
) -> dict[str, Any]:
    """A step's seconds, without those spent decoding frames (the decode step has them)."""
    seconds = round(time.perf_counter() - started - decoded, 4)
    return {"step": name, "sop_instance_uid": uid, "seconds": seconds, **extra}
