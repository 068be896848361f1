"""Words for the job record when nothing was measured: why each clip gave no value."""

from __future__ import annotations

from collections.abc import Sequence

from ai.findings import PipelineStatus
from echo_node.processing.analysis import ClipRun

# Enough to tell the clips apart in `echo-node jobs`; the full story is in each clip's row.
_MAX_CLIPS_NAMED = 8


def nothing_measured(runs: Sequence[ClipRun]) -> str:
    """The skip reason: no clip had a pipeline that ran, and for each clip why not."""
    parts = [f"{run.source.sop_instance_uid}: {_why(run)}" for run in runs[:_MAX_CLIPS_NAMED]]
    if len(runs) > _MAX_CLIPS_NAMED:
        parts.append(f"and {len(runs) - _MAX_CLIPS_NAMED} more clip(s)")
    return f"no measurement pipeline ran on any of {len(runs)} clip(s): " + "; ".join(parts)


def pipelines_failed(runs: Sequence[ClipRun]) -> str | None:
    """When pipelines ran but every one of them failed: the errors (the job fails with them)."""
    failed = [
        f"{run.source.sop_instance_uid}: {p.pipeline}: {p.message}"
        for run in runs
        for p in run.result.pipelines
        if p.status is PipelineStatus.FAILED
    ]
    if not failed:
        return None
    return "every pipeline that ran failed: " + "; ".join(failed[:_MAX_CLIPS_NAMED])


def _why(run: ClipRun) -> str:
    result = run.result
    if not result.pipelines:
        return result.message or f"view {result.view.view.value}, no pipeline"
    return ", ".join(f"{p.pipeline} {p.status.value}" for p in result.pipelines)
