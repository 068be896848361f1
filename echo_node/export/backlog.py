"""Per-destination delivery counts for `echo-node status`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Delivery, Output
from storage.queue import FAILED, PENDING, SENT


@dataclass(frozen=True)
class Backlog:
    destination: str
    pending: int
    failed: int
    sent: int
    # When the oldest output still waiting for this destination was created.
    oldest_pending: datetime | None


def destination_backlog(session: Session, configured: Iterable[str] = ()) -> list[Backlog]:
    """One line a destination (configured ones first, then any others rows still name)."""
    counts: dict[str, dict[str, int]] = {name: {} for name in configured}
    for name, state, count in session.execute(
        select(Delivery.destination, Delivery.state, func.count()).group_by(
            Delivery.destination, Delivery.state
        )
    ):
        counts.setdefault(name, {})[state] = int(count)
    oldest = {
        name: created
        for name, created in session.execute(
            select(Delivery.destination, func.min(Output.created_at))
            .join(Output, Delivery.output_id == Output.id)
            .where(Delivery.state == PENDING)
            .group_by(Delivery.destination)
        )
    }
    return [
        Backlog(
            destination=name,
            pending=by_state.get(PENDING, 0),
            failed=by_state.get(FAILED, 0),
            sent=by_state.get(SENT, 0),
            oldest_pending=oldest.get(name),
        )
        for name, by_state in counts.items()
    ]
