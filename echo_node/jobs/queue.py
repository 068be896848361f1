"""The durable job queue in the database (docs/ARCHITECTURE.md §1, §3).

Every hand-over goes through these rows, so any number of schedulers and workers, in any
number of processes and hosts, can share one database: a unique content key stops duplicate
jobs, and claims take a lease under ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) or inside the
serialised ``BEGIN IMMEDIATE`` transaction (SQLite). A job is owned by the worker that claimed
it (``worker_id``) and claimed by priority; the clock, the insert that loses quietly to another
sweeper, and retrying with doubling backoff until the attempts run out are the durable-queue
core's (storage.queue).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from echo_node.jobs.outcome import JobOutcome
from echo_node.jobs.selection import content_key, processable_instances
from echo_node.settings import Settings
from storage.db import insert_on_conflict
from storage.models import Job, Study
from storage.queue import Retry, utc_now

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, SKIPPED = "queued", "running", "done", "failed", "skipped"
# A study being retrieved from a source (`reprocess --from`, echo_node.retrieve): its job waits
# here, never claimed, and the stable-study sweep leaves the study alone until the retrieval
# ends and the job is queued (or skipped, for a partial retrieval).
RETRIEVING = "retrieving"
STATES = (QUEUED, RUNNING, DONE, FAILED, SKIPPED, RETRIEVING)
# Jobs whose creation counts as the processing of the study content received before it.
_CONTENT_REASONS = ("stable", "retrieve")
# Jobs are claimed highest priority first: a study that just arrived is processed before a
# reprocessing backlog (`reprocess --since` of a thousand studies), whatever was queued first.
LIVE_PRIORITY = 10
REPROCESS_PRIORITY = 0


def enqueue_stable_studies(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Queue a job for each study quiet for ``stable_after_s`` whose content has no job yet
    (nor a retrieval under way or finished since: its job is the one that processes it).

    A study none of whose instances is processable gets a job that is skipped at once, with
    the reason, so `echo-node jobs` explains why it was not processed.
    """
    cutoff = now - timedelta(seconds=settings.stable_after_s)
    newer_job = exists().where(
        Job.study_id == Study.id,
        Job.reason.in_(_CONTENT_REASONS),
        Job.created_at >= Study.last_received_at,
    )
    retrieving = exists().where(Job.study_id == Study.id, Job.state == RETRIEVING)
    candidates = session.scalars(
        select(Study.id).where(Study.last_received_at <= cutoff, ~newer_job, ~retrieving)
    ).all()
    created = []
    for study_id in candidates:
        instances = processable_instances(session, study_id, settings)
        values: dict[str, Any] = {
            "study_id": study_id,
            "content_key": content_key(instances),
            "reason": "stable",
            "priority": LIVE_PRIORITY,
            "state": QUEUED,
            "attempts": 0,
            "not_before": now,
            "created_at": now,
            "steps": [],
        }
        if not instances:
            values.update(
                state=SKIPPED,
                finished_at=now,
                message="no instance to process (modality "
                f"{'/'.join(settings.process_modalities)} from an allowed sender)",
            )
        job_id = _insert_job(session, values)
        if job_id is not None:
            created.append(job_id)
            logger.info(
                "study stable, job queued", extra={"job_id": job_id, "state": values["state"]}
            )
    return created


def _insert_job(session: Session, values: dict[str, Any]) -> int | None:
    """Insert unless this study content already has a job (another sweeper may have won)."""
    job_id: int | None = insert_on_conflict(session, Job, values, returning=Job.id).scalar()
    return job_id


def enqueue_reprocess(
    session: Session,
    study_ids: Iterable[int],
    now: datetime,
    pipelines: str | None,
    priority: int = REPROCESS_PRIORITY,
) -> list[int]:
    """Queue a reprocessing job per study (no content key: reprocessing is deliberate), after
    live studies unless priority says otherwise."""
    jobs = [
        Job(
            study_id=study_id,
            content_key=None,
            reason="reprocess",
            priority=priority,
            pipelines=pipelines,
            state=QUEUED,
            attempts=0,
            not_before=now,
            created_at=now,
            steps=[],
        )
        for study_id in study_ids
    ]
    session.add_all(jobs)
    session.flush()
    return [job.id for job in jobs]


def claim_job(session: Session, worker_id: str, settings: Settings, now: datetime) -> Job | None:
    """Take the next due job (or one whose worker's lease ran out) and lease it: the highest
    priority first, then the longest due."""
    due = or_(
        and_(Job.state == QUEUED, Job.not_before <= now),
        and_(Job.state == RUNNING, Job.lease_until < now),
    )
    job = session.scalars(
        select(Job)
        .where(due)
        .order_by(Job.priority.desc(), Job.not_before, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    if job.state == RUNNING:
        logger.warning(
            "lease expired, taking the job over",
            extra={"job_id": job.id, "previous_worker": job.worker_id},
        )
        if _retry(settings).exhausted(job.attempts):
            _end(job, FAILED, now, error=f"worker lost {job.attempts} times (lease expired)")
            return None
    job.state = RUNNING
    job.attempts += 1
    job.worker_id = worker_id
    job.started_at = now
    job.progress = None
    job.lease_until = now + timedelta(seconds=settings.job_lease_s)
    return job


def renew_lease(session: Session, job_id: int, worker_id: str, settings: Settings) -> bool:
    """Extend the lease; False when the job is no longer this worker's."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state != RUNNING or job.worker_id != worker_id:
        return False
    job.lease_until = utc_now() + timedelta(seconds=settings.job_lease_s)
    return True


def _owned(session: Session, job_id: int, worker_id: str) -> Job | None:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state != RUNNING or job.worker_id != worker_id:
        logger.warning(
            "job no longer held by this worker; outcome dropped", extra={"job_id": job_id}
        )
        return None
    return job


def _end(job: Job, state: str, now: datetime, *, message: str = "", error: str = "") -> None:
    job.state = state
    job.finished_at = now
    job.lease_until = None
    job.message = message or job.message
    job.error = error or None


def record_outcome(session: Session, job_id: int, worker_id: str, outcome: JobOutcome) -> None:
    job = _owned(session, job_id, worker_id)
    if job is not None:
        job.steps = [*job.steps, *outcome.steps]
        _end(job, outcome.state, utc_now(), message=outcome.message)


def record_failure(
    session: Session, job_id: int, worker_id: str, error: str, transient: bool, settings: Settings
) -> None:
    """A transient error is retried with doubling backoff until job_max_attempts."""
    job = _owned(session, job_id, worker_id)
    if job is None:
        return
    now, retry = utc_now(), _retry(settings)
    again = retry.next_attempt(job.attempts, now) if transient else None
    if again is not None:
        job.state = QUEUED
        job.not_before = again
        job.lease_until = None
        job.error = (
            f"attempt {job.attempts}: {error} (retry in {retry.delay_s(job.attempts):.0f} s)"
        )
        return
    _end(job, FAILED, now, error=error)


def _retry(settings: Settings) -> Retry:
    return Retry(settings.retry_backoff_s, settings.job_max_attempts)


def retry_job(session: Session, job: Job, now: datetime) -> None:
    """An operator's retry: back to the queue with fresh attempts."""
    job.state = QUEUED
    job.attempts = 0
    job.not_before = now
    job.lease_until = None
    job.worker_id = None
    job.error = None


def record_progress(session: Session, job_id: int, progress: dict[str, Any]) -> None:
    """Where a running job is (shown by `echo-node jobs`); ignored once it is not running."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.state == RUNNING).values(progress=progress)
    )
