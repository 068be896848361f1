"""What the node holds and owes, read from the database and the data directory: the queries
`echo-node status` prints and the gauges /metrics reads at each scrape (echo_node.metrics.scrape).

Every function only reads; none commits or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from echo_node.export.backlog import Backlog, destination_backlog
from echo_node.jobs.queue import STATES
from echo_node.selftest.record import failed_values
from echo_node.selftest.record import latest as latest_selftest
from echo_node.settings import Settings
from echo_node.watermark import DiskSpace, disk_space
from storage.files import FileStore
from storage.models import Commitment, Instance, Job, RetentionDeletion, Series, Study
from storage.queue import FAILED, PENDING, SENT, utc_now

# What the retention policy records it deleted (echo_node.retention).
DELETION_KINDS = ("received", "results")


@dataclass(frozen=True)
class QueueState:
    """The gauges that describe state rather than events, at one moment."""

    read_at: datetime
    jobs: dict[str, int]  # every job state, 0 included
    backlog: list[Backlog]  # one line a destination
    quarantined: int
    space: DiskSpace
    selftest: SelftestOutcome | None  # the latest finished self-test; None before the first


@dataclass(frozen=True)
class SelftestOutcome:
    id: int
    passed: bool
    finished_at: datetime
    failed_values: int  # reported values outside their tolerance, or missing
    summary: str | None


def queue_state(
    sessions: sessionmaker[Session], store: FileStore, settings: Settings
) -> QueueState:
    """Jobs by state, each destination's backlog, the latest self-test, quarantine and free
    space: two grouped counts and a one-row query on indexed columns, and a directory stat."""
    read_at = utc_now()
    with sessions() as session:
        jobs = job_counts(session)
        backlog = destination_backlog(session, destination_names(settings))
        selftest = selftest_outcome(session)
    space = disk_space(store.root, settings)
    return QueueState(read_at, jobs, backlog, quarantined(store), space, selftest)


def selftest_outcome(session: Session) -> SelftestOutcome | None:
    test = latest_selftest(session)
    if test is None or test.finished_at is None:
        return None
    return SelftestOutcome(
        test.id, bool(test.passed), test.finished_at, len(failed_values(test)), test.summary
    )


def destination_names(settings: Settings) -> list[str]:
    return [destination.name for destination in settings.destinations]


def job_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return {state: int(counts.get(state, 0)) for state in STATES}


def commitment_counts(session: Session) -> dict[str, int]:
    """Storage commitment reports owed (pending), sent, or given up."""
    counts = dict(
        session.execute(select(Commitment.state, func.count()).group_by(Commitment.state)).all()
    )
    return {state: int(counts.get(state, 0)) for state in (PENDING, SENT, FAILED)}


def deletion_counts(session: Session) -> dict[str, int]:
    """Studies the retention policy deleted from, by what it deleted."""
    counts = dict(
        session.execute(
            select(RetentionDeletion.kind, func.count()).group_by(RetentionDeletion.kind)
        ).all()
    )
    return {kind: int(counts.get(kind, 0)) for kind in DELETION_KINDS}


@dataclass(frozen=True)
class Holdings:
    studies: int
    series: int
    instances: int
    last_received_at: datetime | None


def holdings(session: Session) -> Holdings:
    return Holdings(
        studies=session.scalar(select(func.count(Study.id))) or 0,
        series=session.scalar(select(func.count(Series.id))) or 0,
        instances=session.scalar(select(func.count(Instance.id))) or 0,
        last_received_at=session.scalar(select(func.max(Instance.received_at))),
    )


def last_finished_job(session: Session) -> Job | None:
    return session.scalars(
        select(Job).where(Job.finished_at.is_not(None)).order_by(Job.finished_at.desc())
    ).first()


def quarantined(store: FileStore) -> int:
    """Refused instances kept in quarantine/ (each has a JSON sidecar)."""
    return sum(1 for _ in store.quarantine_dir.glob("*.json"))
