"""Which studies the retention policy lets go, when, and why (reads only).

A study's clock starts when everything owed for it is done: its latest job has finished (done,
or skipped with nothing to process) after its last instance arrived, every result of that job
has been delivered to every destination (the latest delivery's time; the job's end when there
is no destination), and every storage commitment request naming one of its received instances
has been answered (the latest report's time). Received instances go ``retention_days`` after
that clock. The node's own results (SR, overlays) and the study's record go
``retention_results_days`` after their delivery (0: kept for ever), and only once the received
instances have gone: commitment is about those. Anything still owed holds the study: a job
queued, running or failed, a delivery pending or given up, a commitment report not sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from echo_node.settings import Settings
from storage.models import Commitment, Delivery, Instance, Job, Output, Series, Study
from storage.queue import SENT as COMMITMENT_SENT

Kind = Literal["received", "results"]
_FINISHED = ("done", "skipped")
_DELIVERED = "sent"


@dataclass(frozen=True)
class StoredFile:
    instance_id: int
    sop_instance_uid: str
    path: str  # relative to the data directory
    size: int


@dataclass(frozen=True)
class Assessment:
    """One study under the policy: what would go (``kind``), from when, or what holds it."""

    study_id: int
    study_instance_uid: str
    kind: Kind
    files: tuple[StoredFile, ...]
    clock: datetime | None  # results delivered and commitments answered; None while held
    due_at: datetime | None
    reason: str

    def due(self, now: datetime) -> bool:
        return self.due_at is not None and now >= self.due_at

    @property
    def bytes(self) -> int:
        return sum(file.size for file in self.files)


@dataclass(frozen=True)
class CommitmentState:
    """The answered state of one storage commitment request, with the instances it names."""

    transaction_uid: str
    answered_at: datetime | None  # None: the report has not been sent (pending or given up)
    sop_instance_uids: frozenset[str]


def enabled(settings: Settings) -> bool:
    return settings.retention_days > 0


def commitment_states(session: Session) -> list[CommitmentState]:
    rows = session.execute(
        select(
            Commitment.transaction_uid, Commitment.state, Commitment.sent_at, Commitment.references
        )
    )
    return [
        CommitmentState(
            transaction_uid,
            sent_at if state == COMMITMENT_SENT else None,
            frozenset(str(reference[1]) for reference in references),
        )
        for transaction_uid, state, sent_at, references in rows
    ]


def candidate_study_ids(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Studies that may be due: a job of theirs finished at least retention_days ago (the clock
    cannot start before that), with something left to delete. Everything else is held."""
    cutoff = now - timedelta(days=settings.retention_days)
    finished = exists().where(
        Job.study_id == Study.id, Job.finished_at.is_not(None), Job.finished_at <= cutoff
    )
    query = select(Study.id).where(finished).order_by(Study.id)
    if not settings.retention_results_days:
        # Results kept for ever: a study left with results only has nothing more to go.
        received = exists().where(
            Series.study_id == Study.id,
            Instance.series_id == Series.id,
            Instance.id.not_in(select(Output.instance_id)),
        )
        query = query.where(received)
    return list(session.scalars(query))


def review(
    session: Session, settings: Settings, now: datetime, *, every: bool = False
) -> list[Assessment]:
    """The studies that may be due at ``now`` (``every``: all studies, to say what holds
    each), assessed; nothing is changed."""
    if not enabled(settings):
        return []
    commitments = commitment_states(session)
    ids: Iterable[int] = (
        session.scalars(select(Study.id).order_by(Study.id))
        if every
        else candidate_study_ids(session, settings, now)
    )
    found = (assess(session, settings, study_id, commitments) for study_id in ids)
    return [assessment for assessment in found if assessment is not None]


def assess(
    session: Session, settings: Settings, study_id: int, commitments: Sequence[CommitmentState]
) -> Assessment | None:
    """The study's state under the policy (None: no such study, or nothing left to delete)."""
    study = session.get(Study, study_id)
    if study is None:
        return None
    outputs = set(session.scalars(select(Output.instance_id).where(Output.study_id == study_id)))
    stored = [
        StoredFile(row.id, row.sop_instance_uid, row.path, row.size)
        for row in session.scalars(
            select(Instance)
            .join(Series, Instance.series_id == Series.id)
            .where(Series.study_id == study_id)
            .order_by(Instance.id)
        )
    ]
    received = tuple(file for file in stored if file.instance_id not in outputs)
    kind: Kind = "received" if received else "results"
    files = received if received else tuple(stored)
    days = settings.retention_days if received else settings.retention_results_days
    uid = study.study_instance_uid

    def held(reason: str) -> Assessment:
        return Assessment(study_id, uid, kind, files, None, None, reason)

    if kind == "results" and not days:
        return held("results are kept for ever (retention_results_days = 0)")
    job = session.scalars(
        select(Job).where(Job.study_id == study_id).order_by(Job.id.desc()).limit(1)
    ).first()
    if job is None:
        return held("not processed yet")
    if job.created_at < study.last_received_at:
        return held("instances arrived after its last job; the next job is due")
    if job.state not in _FINISHED or job.finished_at is None:
        return held(f"its last job #{job.id} is {job.state}: results not delivered")
    delivered_at, waiting = _delivered(session, job)
    if waiting:
        return held(f"results of job #{job.id} not delivered: {waiting}")
    clock, why = delivered_at, f"results delivered {delivered_at:%Y-%m-%d %H:%M} UTC"
    if received:
        names = {file.sop_instance_uid for file in received}
        asked = [c for c in commitments if c.sop_instance_uids & names]
        unanswered = sorted(c.transaction_uid for c in asked if c.answered_at is None)
        if unanswered:
            return held(f"storage commitment not answered (Transaction UID {unanswered[0]})")
        answered = [c.answered_at for c in asked if c.answered_at is not None]
        if answered and max(answered) > clock:
            clock = max(answered)
            why += f", storage commitment answered {clock:%Y-%m-%d %H:%M} UTC"
    setting = "retention_days" if received else "retention_results_days"
    due_at = clock + timedelta(days=days)
    return Assessment(
        study_id, uid, kind, files, clock, due_at, f"{why}; {setting} = {days:g} days"
    )


def _delivered(session: Session, job: Job) -> tuple[datetime, str]:
    """When the job's results were last delivered (its end without deliveries), and what is
    still owed ("" when nothing)."""
    rows = session.execute(
        select(Delivery.destination, Delivery.state, func.count(), func.max(Delivery.sent_at))
        .join(Output, Delivery.output_id == Output.id)
        .where(Output.job_id == job.id)
        .group_by(Delivery.destination, Delivery.state)
    ).all()
    waiting = sorted(
        f"{count} {state} for {name}" for name, state, count, _ in rows if state != _DELIVERED
    )
    sent = [at for _, state, _, at in rows if state == _DELIVERED and at is not None]
    assert job.finished_at is not None
    return max([job.finished_at, *sent]), ", ".join(waiting)
