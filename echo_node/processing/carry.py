"""A reprocess limited to some pipelines keeps the other pipelines' latest results.

Its SR supersedes the study's earlier one, so it must hold every value that one held: the
pipelines it did not run contribute their results from the latest earlier job that recorded
them (JobClip.detail[CLIP_RESULT_KEY]), with their points, flags and provenance unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from ai.findings import ClipResult
from ai.result_json import result_from_json
from echo_node.processing.analysis import wanted
from storage.models import CLIP_RESULT_KEY, Job, JobClip


def earlier_results(session: Session, study_id: int, job_id: int) -> dict[str, ClipResult]:
    """Per SOP Instance UID, the latest result another job of the study recorded."""
    rows = session.execute(
        select(JobClip.sop_instance_uid, JobClip.detail)
        .join(Job, Job.id == JobClip.job_id)
        .where(Job.study_id == study_id, Job.id != job_id)
        .order_by(Job.id)
    ).all()
    found: dict[str, ClipResult] = {}
    for uid, detail in rows:  # later jobs overwrite earlier ones
        if CLIP_RESULT_KEY in detail:
            found[uid] = result_from_json(detail[CLIP_RESULT_KEY])
    return found


def merge(new: ClipResult, earlier: ClipResult | None, only: Collection[str]) -> ClipResult:
    """The new result plus the earlier result's pipelines this run was not asked to run.

    Nothing is carried across a change of view: those results belong to another reading of
    the clip, and only a full reprocess can settle it.
    """
    if earlier is None or earlier.view.view is not new.view.view:
        return new
    ran = {p.pipeline for p in new.pipelines}
    kept = tuple(
        p for p in earlier.pipelines if p.pipeline not in ran and not wanted(p.pipeline, only)
    )
    if not kept:
        return new
    return dataclasses.replace(
        new,
        pipelines=kept + new.pipelines,
        frame_count=new.frame_count or earlier.frame_count,
        frame_time_ms=new.frame_time_ms if new.frame_time_ms is not None else earlier.frame_time_ms,
        message="",
    )
