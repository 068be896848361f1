"""The durable-queue core: what every queue of rows in the database shares.

Three queues hand work over through the database (docs/ARCHITECTURE.md §1, §3): processing
jobs (echo_node.jobs.queue), deliveries of results (echo_node.export.queue) and storage
commitment reports (storage.commitments). Each row has a state, an attempt count, the time its
next attempt is due and a lease. This module is what they have in common:

- **claim and lease**: :func:`lease_due` takes the due rows of a retry queue under a lease,
  oldest first. On PostgreSQL the due rows are locked with ``FOR UPDATE SKIP LOCKED`` so
  concurrent workers take disjoint sets; on SQLite the session's ``BEGIN IMMEDIATE`` already
  serialises writers. A leased row is not due again before its lease expires, so no two
  workers send it at once. Each lease counts as an attempt: a worker that dies mid-send used
  one.
- **the claim's token**: a :class:`Lease` names the row and the exact end of its lease, and
  :func:`update_leased` writes an outcome only while the row still carries it, so a worker
  whose lease ran out (and whose row another worker took over) cannot overwrite the newer
  outcome.
- **retry with backoff, then give up**: :class:`Retry` (``backoff_s`` doubling per attempt,
  ``max_attempts``), and :func:`record_retry`, which makes a leased row due again or fails it.
- one clock, :func:`utc_now`; the one ``INSERT … ON CONFLICT`` for both engines that queuing
  a row uses is storage.db's ``insert_on_conflict``.

Helpers here never commit: the transaction is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.orm import Session

# The states of a retry queue's rows (deliveries, commitment reports): pending until the peer
# acknowledges (sent, final) or the attempts run out or a refusal is permanent (failed).
PENDING, SENT, FAILED = "pending", "sent", "failed"
# Longest error text kept on a row: enough for a DIMSE status or an HTTP body's start.
ERROR_LIMIT = 2000

# A SELECT of a queue's rows (with whatever it joins).
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def utc_now() -> datetime:
    """The time every queue row is stamped with (the database keeps UTC only)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Retry:
    """How a queue retries: ``backoff_s`` doubling after each failed attempt, at most
    ``max_attempts`` attempts."""

    backoff_s: float
    max_attempts: int

    def delay_s(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt."""
        return self.backoff_s * 2.0 ** max(attempts - 1, 0)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after the ``attempts``-th attempt failed; None: give up."""
        if self.exhausted(attempts):
            return None
        return now + timedelta(seconds=self.delay_s(attempts))


def gave_up(attempts: int, error: str) -> str:
    """The error a row keeps when its queue gives up on it."""
    plural = "" if attempts == 1 else "s"
    return f"gave up after {attempts} attempt{plural}: {error}"[:ERROR_LIMIT]


@dataclass(frozen=True)
class Lease:
    """A claimed row of a retry queue; the exact end of its lease is the claim's token."""

    row_id: int
    lease_until: datetime


def lease_due(
    session: Session,
    table: Any,  # a mapped class with id, state, next_attempt_at, lease_until, attempts
    now: datetime,
    lease_s: float,
    limit: int,
    *where: ColumnElement[bool],
) -> tuple[list[int], datetime]:
    """Lease up to ``limit`` due rows of ``table``, oldest first: their ids and lease end.

    A row is due when it is pending, its next attempt time has come and no live lease holds it.
    """
    query = (
        select(table.id)
        .where(
            table.state == PENDING,
            table.next_attempt_at <= now,
            or_(table.lease_until.is_(None), table.lease_until <= now),
            *where,
        )
        .order_by(table.next_attempt_at, table.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [int(i) for i in session.scalars(query)]
    lease_until = now + timedelta(seconds=lease_s)
    if ids:
        session.execute(
            update(table)
            .where(table.id.in_(ids))
            .values(lease_until=lease_until, attempts=table.attempts + 1)
            .execution_options(synchronize_session=False)
        )
    return ids, lease_until


def leased_rows(query: _Query, table: Any, ids: list[int]) -> _Query:
    """``query`` narrowed to the rows :func:`lease_due` just leased, oldest first, read afresh
    (the lease was written past the session, so rows it holds are refreshed)."""
    return (
        query.where(table.id.in_(ids))
        .order_by(table.next_attempt_at, table.id)
        .execution_options(populate_existing=True)
    )


def update_leased(session: Session, table: Any, lease: Lease, **values: Any) -> bool:
    """Write ``values`` and end the lease, if the row is still pending under this very lease;
    False when it no longer is (the lease expired and another worker took the row over)."""
    result = session.execute(
        update(table)
        .where(
            table.id == lease.row_id,
            table.state == PENDING,
            table.lease_until == lease.lease_until,
        )
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_retry(
    session: Session,
    table: Any,
    lease: Lease,
    attempts: int,
    error: str,
    retry: Retry,
    **values: Any,
) -> str:
    """A failed attempt (the ``attempts``-th): pending again after the backoff, or failed
    after the last attempt; ``values`` are written either way. Returns the state recorded
    ("" if the lease was no longer this claim's)."""
    when = retry.next_attempt(attempts, utc_now())
    if when is None:
        failed = update_leased(
            session, table, lease, state=FAILED, last_error=gave_up(attempts, error), **values
        )
        return FAILED if failed else ""
    again = update_leased(
        session, table, lease, next_attempt_at=when, last_error=error[:ERROR_LIMIT], **values
    )
    return PENDING if again else ""
