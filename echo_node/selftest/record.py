"""The self-tests on record: the latest finished one, for `status`, `doctor` and /metrics."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import SelfTest


def latest(session: Session) -> SelfTest | None:
    """The self-test that finished last (one still running is not an outcome yet)."""
    return session.scalars(
        select(SelfTest)
        .where(SelfTest.finished_at.is_not(None))
        .order_by(SelfTest.finished_at.desc(), SelfTest.id.desc())
        .limit(1)
    ).first()


def failed_values(test: SelfTest) -> list[str]:
    """The comparisons of a self-test that were outside their tolerance, in words."""
    comparisons = (test.detail or {}).get("comparisons", [])
    return [str(c.get("text", c.get("key"))) for c in comparisons if not c.get("ok")]
