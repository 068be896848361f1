"""A doctor check's result row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["OK", "WARN", "FAIL"]
# Items a detail text names before "and N more" (--json lists them all).
SHOWN = 5


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    # What the check found, one entry each (UID, job id, path in the data directory).
    items: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        """The detail followed by the first items, for the table."""
        if not self.items:
            return self.detail
        shown = "; ".join(self.items[:SHOWN])
        more = len(self.items) - SHOWN
        return f"{self.detail}: {shown}" + (f" and {more} more" if more > 0 else "")


def worst(checks: Sequence[Check]) -> Status:
    statuses = {check.status for check in checks}
    return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "OK"
