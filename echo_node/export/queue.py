"""Delivery rows: queuing, claiming with a lease, and recording each outcome.

A delivery is ``pending`` until a peer acknowledges it (``sent``, final) or it runs out of
attempts or meets a permanent refusal (``failed``). Claiming sets ``lease_until``; the exact
lease timestamp is the claim's token, and an outcome is recorded only while the row still
carries it, so a worker whose lease expired (and whose delivery another worker took over)
cannot overwrite the newer outcome. Helpers here never commit: the transaction is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from echo_node.settings import Destination
from storage import leases
from storage.models import Delivery, Instance, Output

PENDING, SENT, FAILED = leases.PENDING, "sent", "failed"
# Longest error text kept on a row: enough for a DIMSE status or an HTTP body's start.
_ERROR_LIMIT = 2000


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds until ``lease_until``: what to send and where."""

    delivery_id: int
    destination: str
    attempts: int  # including this one
    lease_until: datetime
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str  # relative to the data directory


def utc_now() -> datetime:
    return datetime.now(UTC)


def queue_deliveries(
    session: Session, output: Output, destinations: Iterable[Destination | str]
) -> None:
    """Add a pending delivery of ``output`` per destination; pairs already queued are kept."""
    now = utc_now()
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for destination in destinations:
        name = destination if isinstance(destination, str) else destination.name
        session.execute(
            module.insert(Delivery.__table__)
            .values(
                output_id=output.id,
                destination=name,
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing()
        )


def claim_due(session: Session, worker_id: str, lease_s: float, limit: int) -> list[Claim]:
    """Lease up to ``limit`` pending deliveries whose time has come, oldest first.

    How rows are leased, on PostgreSQL and SQLite, is storage.leases'. ``worker_id`` is for
    the caller's logs; the lease timestamp is the token.
    """
    del worker_id  # the table has no owner column; see the module docstring
    ids, lease_until = leases.lease_due(session, Delivery, utc_now(), lease_s, limit)
    if not ids:
        return []
    rows = session.execute(
        select(Delivery, Output, Instance)
        .join(Output, Delivery.output_id == Output.id)
        .join(Instance, Output.instance_id == Instance.id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .execution_options(populate_existing=True)
    )
    return [
        Claim(
            delivery_id=delivery.id,
            destination=delivery.destination,
            attempts=delivery.attempts,
            lease_until=lease_until,
            sop_instance_uid=output.sop_instance_uid,
            sop_class_uid=instance.sop_class_uid,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            path=instance.path,
        )
        for delivery, output, instance in rows
    ]


def _still_ours(claim: Claim) -> Any:
    return and_(
        Delivery.id == claim.delivery_id,
        Delivery.state == PENDING,
        Delivery.lease_until == claim.lease_until,
    )


def mark_sent(session: Session, claim: Claim) -> bool:
    """Record the peer's acknowledgement; False if the claim was no longer this worker's."""
    result = session.execute(
        update(Delivery)
        .where(_still_ours(claim))
        .values(state=SENT, sent_at=utc_now(), lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(session: Session, claim: Claim, error: str) -> bool:
    """A permanent failure: no more attempts until ``echo-node send`` asks again."""
    result = session.execute(
        update(Delivery)
        .where(_still_ours(claim))
        .values(state=FAILED, lease_until=None, last_error=error[:_ERROR_LIMIT])
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, claim: Claim) -> bool:
    """Give a claim back unsent (the pass ran out of time): due again, the attempt not counted."""
    result = session.execute(
        update(Delivery)
        .where(_still_ours(claim))
        .values(lease_until=None, attempts=Delivery.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_delay_s(attempts: int, backoff_s: float) -> float:
    """The wait after the ``attempts``-th failed attempt: ``backoff_s`` doubling each time."""
    return backoff_s * 2.0 ** max(attempts - 1, 0)


def mark_retry(
    session: Session, claim: Claim, error: str, *, backoff_s: float, max_attempts: int
) -> str:
    """A transient failure: pending again after the backoff, or failed after the last attempt.

    Returns the state recorded ("" if the claim was no longer this worker's).
    """
    if claim.attempts >= max_attempts:
        plural = "" if claim.attempts == 1 else "s"
        message = f"gave up after {claim.attempts} attempt{plural}: {error}"
        return FAILED if mark_failed(session, claim, message) else ""
    next_attempt = utc_now() + timedelta(seconds=retry_delay_s(claim.attempts, backoff_s))
    result = session.execute(
        update(Delivery)
        .where(_still_ours(claim))
        .values(next_attempt_at=next_attempt, lease_until=None, last_error=error[:_ERROR_LIMIT])
        .execution_options(synchronize_session=False)
    )
    return PENDING if result.rowcount else ""  # type: ignore[attr-defined]


def requeue(session: Session, output_ids: Iterable[int], destinations: Iterable[str]) -> int:
    """Make these outputs due again for these destinations, whatever their state.

    Rows are created where missing; sent and failed rows go back to pending with a fresh
    attempt count. A row another worker holds under a live lease is left alone: it is being
    sent right now, and resetting its lease would let a second worker send it at once.
    Returns the number of rows reset or created.
    """
    now = utc_now()
    names = list(destinations)
    count = 0
    for output_id in output_ids:
        output = session.get(Output, output_id)
        if output is None:
            continue
        existing = set(
            session.scalars(
                select(Delivery.destination).where(
                    Delivery.output_id == output_id, Delivery.destination.in_(names)
                )
            )
        )
        missing = [name for name in names if name not in existing]
        queue_deliveries(session, output, missing)  # then reset below like the others
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.output_id == output_id,
                Delivery.destination.in_(names),
                or_(
                    Delivery.state != PENDING,
                    Delivery.lease_until.is_(None),
                    Delivery.lease_until <= now,
                ),
            )
            .values(
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                lease_until=None,
                last_error=None,
                sent_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        count += int(result.rowcount)  # type: ignore[attr-defined]
    return count
