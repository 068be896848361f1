"""`reprocess STUDY_UID --from NAME`: bring a study back from a source, then queue it.

1. The source is asked how many instances it holds (C-FIND, QIDO-RS): none is "not found",
   and nothing is made.
2. A job in state ``retrieving`` is written first: while it is there the stable-study sweep
   leaves the study alone, so instances arriving (C-MOVE through the node's own SCP) never
   make a job of their own and a partial study is never processed behind the operator's back.
3. The instances come back through the Ingestor (C-GET, WADO-RS) or the node's SCP (C-MOVE):
   the same checks, quarantine and durability as any received instance.
4. The job is queued when every instance arrived (or ``allow_partial``); a partial retrieval
   keeps what arrived and ends the job as skipped, saying how many of how many; a retrieval
   that brought nothing leaves no job and no empty study behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from echo_node.jobs import queue
from echo_node.node import Node
from echo_node.retrieve import dicomweb, dimse
from echo_node.retrieve.outcome import Retrieval, RetrieveError, StudyNotFound, Tally
from echo_node.settings import Source
from storage.index import ensure_study
from storage.models import Job, Series, Study
from storage.queue import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrieveResult:
    retrieval: Retrieval
    job_id: int | None  # None: nothing arrived, no job left
    queued: bool  # the job waits for a worker (complete, or partial with allow_partial)


@dataclass(frozen=True)
class _Hold:
    job_id: int
    made_study: bool  # the study row was made for this retrieval (none was held)


def retrieve_study(
    node: Node,
    source: Source,
    study_uid: str,
    *,
    pipelines: str | None = None,
    priority: int = queue.REPROCESS_PRIORITY,
    allow_partial: bool = False,
) -> RetrieveResult:
    """Retrieve ``study_uid`` from ``source`` and queue it for processing (see the module doc).

    Raises StudyNotFound (the source holds none of it) or RetrieveError (the source could not
    be asked) before anything is written.
    """
    space = node.watermark.check()
    if not space.ok:
        raise RetrieveError(f"free disk space below the watermark ({space.describe()})")
    settings = node.settings
    started = time.perf_counter()
    expected, sop_classes = _count(node, source, study_uid)
    if expected == 0:
        raise StudyNotFound(f"study {study_uid} not found at source {source.name} (0 instances)")
    hold = _hold(node, source, study_uid, pipelines, priority)
    method = "WADO-RS" if source.kind == "dicomweb" else str(source.retrieve).upper()
    tally, problem = Tally(), ""
    stored = not_stored = total = 0
    try:
        if source.kind == "dicomweb":
            problem = dicomweb.wado_rs(source, settings, node.ingestor, study_uid, tally)
            stored, not_stored = tally.stored, tally.not_stored
        elif source.retrieve == "c-get":
            sub = dimse.c_get(source, settings, node.ingestor, study_uid, sop_classes, tally)
            stored, not_stored = tally.stored, max(tally.not_stored, sub.failed)
            total, problem = sub.total, sub.problem(method)
        else:
            sub = dimse.c_move(source, settings, study_uid)
            stored, not_stored = sub.completed + sub.warning, sub.failed
            problems = (sub.problem(method), _move_hint(sub, settings.ae_title))
            total, problem = sub.total, "; ".join(filter(None, problems))
    except RetrieveError as exc:
        problem, stored, not_stored = str(exc), tally.stored, tally.not_stored
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): what arrived is kept, not processed
        stored, not_stored = tally.stored, tally.not_stored
        interrupted = _result(
            source, method, study_uid, expected, total, stored, not_stored, started, "interrupted"
        )
        _finish(node, hold, interrupted, allow_partial=False)
        raise
    if tally.reasons:
        problem = "; ".join(filter(None, [problem, *tally.reasons[:3]]))
    retrieval = _result(
        source, method, study_uid, expected, total, stored, not_stored, started, problem
    )
    return _finish(node, hold, retrieval, allow_partial)


def _count(node: Node, source: Source, study_uid: str) -> tuple[int | None, tuple[str, ...]]:
    if source.kind == "dicomweb":
        return dicomweb.study_at_source(source, node.settings, study_uid), ()
    found = dimse.study_at_source(source, node.settings, study_uid)
    return found.instances, found.sop_classes


def _move_hint(sub: dimse.SubOperations, ae_title: str) -> str:
    if not sub.completed and (sub.failed or sub.status not in (0x0000, None)):
        return (
            f"the source could not store any instance to {ae_title}: is `echo-node serve` "
            "running at the address the source has for it, and do allowed_peers let it in?"
        )
    return ""


def _result(
    source: Source,
    method: str,
    study_uid: str,
    expected: int | None,
    total: int,
    stored: int,
    not_stored: int,
    started: float,
    problem: str,
) -> Retrieval:
    # The source's own count of sub-operations stands in when C-FIND did not say.
    known = expected if expected is not None else (total or None)
    return Retrieval(
        source=source.name,
        method=method,
        study_instance_uid=study_uid,
        expected=max(known, total) if known is not None else None,
        stored=stored,
        not_stored=not_stored,
        seconds=time.perf_counter() - started,
        problem=problem,
    )


def _hold(
    node: Node, source: Source, study_uid: str, pipelines: str | None, priority: int
) -> _Hold:
    now = utc_now()
    with node.sessions.begin() as session:
        study, made = ensure_study(session, study_uid, now)
        # A retrieval of the same study that never finished (its process died) ends here.
        session.execute(
            update(Job)
            .where(Job.study_id == study.id, Job.state == queue.RETRIEVING)
            .values(
                state=queue.FAILED,
                finished_at=now,
                error="retrieval interrupted; a new retrieval of the study started",
            )
        )
        job = Job(
            study_id=study.id,
            content_key=None,
            reason="retrieve",
            pipelines=pipelines,
            state=queue.RETRIEVING,
            priority=priority,
            attempts=0,
            not_before=now,
            created_at=now,
            steps=[],
            message=f"retrieving from {source.name}",
        )
        session.add(job)
        session.flush()
        return _Hold(job.id, made)


def _finish(node: Node, hold: _Hold, retrieval: Retrieval, allow_partial: bool) -> RetrieveResult:
    now = utc_now()
    step = {
        "step": "retrieve",
        "seconds": round(retrieval.seconds, 3),
        "source": retrieval.source,
        "method": retrieval.method,
        "expected": retrieval.expected,
        "stored": retrieval.stored,
        "not_stored": retrieval.not_stored,
    }
    queued = False
    with node.sessions.begin() as session:
        job = session.get(Job, hold.job_id, with_for_update=True)
        if job is None or job.state != queue.RETRIEVING:  # another retrieval took over
            return RetrieveResult(retrieval, None, False)
        if retrieval.stored == 0:
            study_id = job.study_id
            session.delete(job)
            session.flush()
            if hold.made_study and not _has_series(session, study_id):
                session.execute(delete(Study).where(Study.id == study_id))
            _log(retrieval, None, "nothing retrieved")
            return RetrieveResult(retrieval, None, False)
        # Made now: it covers every instance that arrived (the sweep's rule, queue.py).
        job.created_at = now
        job.steps = [step]
        if retrieval.complete or allow_partial:
            job.state, job.not_before, queued = queue.QUEUED, now, True
            job.message = retrieval.describe() + (
                "" if retrieval.complete else "; processed as it is (--allow-partial)"
            )
        else:
            job.state, job.finished_at = queue.SKIPPED, now
            job.message = retrieval.describe() + "; what arrived is kept, not processed (partial)"
    _log(retrieval, hold.job_id, "queued" if queued else "partial, not queued")
    return RetrieveResult(retrieval, hold.job_id, queued)


def _has_series(session: Session, study_id: int) -> bool:
    return bool(session.scalar(select(func.count(Series.id)).where(Series.study_id == study_id)))


def _log(retrieval: Retrieval, job_id: int | None, outcome: str) -> None:
    logger.info(
        "retrieval from a source ended: " + outcome,
        extra={
            "study_instance_uid": retrieval.study_instance_uid,
            "source": retrieval.source,
            "method": retrieval.method,
            "expected": retrieval.expected,
            "stored": retrieval.stored,
            "not_stored": retrieval.not_stored,
            "job_id": job_id,
        },
    )
