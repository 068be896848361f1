"""Leasing the due rows of a retry queue (deliveries, storage-commitment reports).

A row is due when it is pending, its next attempt time has come and no live lease holds it.
On PostgreSQL the due rows are locked with ``FOR UPDATE SKIP LOCKED`` so concurrent workers
take disjoint sets; on SQLite the session's ``BEGIN IMMEDIATE`` already serialises writers.
Either way a leased row is not due again before its lease expires, so no two workers send it
at once. Each lease counts as an attempt: a worker that dies mid-send used one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

PENDING = "pending"


def lease_due(
    session: Session,
    table: Any,  # a mapped class with id, state, next_attempt_at, lease_until, attempts
    now: datetime,
    lease_s: float,
    limit: int,
    *where: ColumnElement[bool],
) -> tuple[list[int], datetime]:
    """Lease up to ``limit`` due rows of ``table``, oldest first: their ids and lease end."""
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
