"""One ultrasound instance in, a ClipResult out: decode → view → the view's pipelines.

    from ai.analyze import analyze
    result = analyze("clip.dcm")            # a path or a pydicom Dataset
    result.view.view, result.view.decided_by, result.pipelines

`models` is the model store (ai.models.store.ModelStore) the neural pipelines load from; without
it they report model_not_installed. `classifier` is an optional view classifier (a callable
Clip → ViewDecision | None, e.g. the EchoPrime one from ai.models) consulted after the header
rules. A clip whose view is unknown, M-mode or another view without a pipeline here gets no
pipeline, and the result says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ai.clip import Clip
from ai.decode import Source, load_clip
from ai.findings import ClipResult, PipelineResult, PipelineStatus, View, ViewDecision
from ai.model_source import ModelSource
from ai.pipelines import PipelineFn, pipeline_name, pipelines_for
from ai.plausibility import flag_implausible
from ai.views import DEFAULT_MIN_CONFIDENCE, Classifier, decide_view

logger = logging.getLogger(__name__)


def analyze(
    dataset_or_path: Source,
    models: ModelSource | None = None,
    classifier: Classifier | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> ClipResult:
    """Decode the instance, decide its view and run every pipeline registered for it."""
    clip = load_clip(dataset_or_path)
    decision = decide_view(clip, classifier, min_confidence)
    return run_pipelines(clip, decision, models)


def run_pipelines(
    clip: Clip, decision: ViewDecision, models: ModelSource | None = None
) -> ClipResult:
    functions = pipelines_for(decision.view.value)
    if not functions:
        note = _why_no_pipeline(decision)
        logger.info(
            "clip not processed: %s",
            note,
            extra={"sop_instance_uid": clip.sop_instance_uid, "view": decision.view.value},
        )
        return ClipResult(
            sop_instance_uid=clip.sop_instance_uid,
            view=decision,
            frame_count=len(clip),
            frame_time_ms=clip.frame_time_ms,
            message=note,
            decoder=clip.decoder,
        )
    results: list[PipelineResult] = []
    for function in functions:
        results.append(run_pipeline(function, clip, models, tuple(results)))
    return ClipResult(
        sop_instance_uid=clip.sop_instance_uid,
        view=decision,
        pipelines=tuple(results),
        frame_count=len(clip),
        frame_time_ms=clip.frame_time_ms,
        decoder=clip.decoder,
    )


def _why_no_pipeline(decision: ViewDecision) -> str:
    if decision.view == View.UNKNOWN:
        return f"not processed: view unknown ({decision.reason})"
    shown = decision.label or decision.view.value
    return f"not processed: no pipeline for view {shown!r} (decided by {decision.decided_by})"


def run_pipeline(
    function: PipelineFn,
    clip: Clip,
    models: ModelSource | None,
    earlier: Sequence[PipelineResult] = (),
) -> PipelineResult:
    """One pipeline, its values checked against physiological limits. A fault in it becomes a
    failed result naming the error, so the other pipelines of the clip still run; the
    traceback goes to the log. `earlier`: the clip's results so far (ai.pipelines)."""
    try:
        return flag_implausible(function(clip, models, earlier=earlier))
    except Exception as error:
        logger.exception(
            "pipeline %s failed",
            function.__name__,
            extra={"sop_instance_uid": clip.sop_instance_uid},
        )
        return PipelineResult(
            pipeline=pipeline_name(function),
            status=PipelineStatus.FAILED,
            message=f"{type(error).__name__}: {error}",
        )
