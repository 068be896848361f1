"""Delivery rows: queuing, claiming with a lease, and recording each outcome.

A delivery is ``pending`` until a peer acknowledges it (``sent``, final) or it runs out of
attempts or meets a permanent refusal (``failed``). Claiming, the lease that is the claim's
token, and retrying with backoff are the durable-queue core's (storage.queue). Helpers here
never commit: the transaction is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from echo_node.settings import Destination
from storage.db import insert_on_conflict
from storage.models import Delivery, Instance, Output
from storage.queue import (
    ERROR_LIMIT,
    FAILED,
    PENDING,
    SENT,
    Lease,
    Retry,
    lease_due,
    leased_rows,
    record_retry,
    update_leased,
    utc_now,
)


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

    @property
    def lease(self) -> Lease:
        return Lease(self.delivery_id, self.lease_until)


def queue_deliveries(
    session: Session, output: Output, destinations: Iterable[Destination | str]
) -> None:
    """Add a pending delivery of ``output`` per destination; pairs already queued are kept."""
    now = utc_now()
    for destination in destinations:
        name = destination if isinstance(destination, str) else destination.name
        insert_on_conflict(
            session,
            Delivery.__table__,
            {
                "output_id": output.id,
                "destination": name,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
            },
        )


def claim_due(session: Session, worker_id: str, lease_s: float, limit: int) -> list[Claim]:
    """Lease up to ``limit`` pending deliveries whose time has come, oldest first.

    How rows are leased, on PostgreSQL and SQLite, is storage.queue's. ``worker_id`` is for
    the caller's logs; the lease timestamp is the token.
    """
    del worker_id  # the table has no owner column; see storage.queue
    ids, lease_until = lease_due(session, Delivery, utc_now(), lease_s, limit)
    if not ids:
        return []
    rows = session.execute(
        leased_rows(
            select(Delivery, Output, Instance)
            .join(Output, Delivery.output_id == Output.id)
            .join(Instance, Output.instance_id == Instance.id),
            Delivery,
            ids,
        )
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


def mark_sent(session: Session, claim: Claim) -> bool:
    """Record the peer's acknowledgement; False if the claim was no longer this worker's."""
    return update_leased(
        session, Delivery, claim.lease, state=SENT, sent_at=utc_now(), last_error=None
    )


def mark_failed(session: Session, claim: Claim, error: str) -> bool:
    """A permanent failure: no more attempts until ``echo-node send`` asks again."""
    return update_leased(
        session, Delivery, claim.lease, state=FAILED, last_error=error[:ERROR_LIMIT]
    )


def release(session: Session, claim: Claim) -> bool:
    """Give a claim back unsent (the pass ran out of time): due again, the attempt not counted."""
    return update_leased(session, Delivery, claim.lease, attempts=Delivery.attempts - 1)


def mark_retry(
    session: Session, claim: Claim, error: str, *, backoff_s: float, max_attempts: int
) -> str:
    """A transient failure: pending again after the backoff, or failed after the last attempt.

    Returns the state recorded ("" if the claim was no longer this worker's).
    """
    retry = Retry(backoff_s, max_attempts)
    return record_retry(session, Delivery, claim.lease, claim.attempts, error, retry)


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
