"""What sending one file to a peer came to, shared by the DIMSE and DICOMweb senders."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One stored file to send; ``key`` is the caller's (the delivery id)."""

    key: int
    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str


@dataclass(frozen=True)
class SendResult:
    """``ok``: the peer acknowledged it. Otherwise ``transient`` says whether a retry may help.

    ``message`` goes to logs (destination names, UIDs, status codes only); ``detail`` (the
    peer's address, its error text) only to the delivery row an operator reads.
    ``attempted`` is False for an item left unsent because the pass ran out of lease time.
    """

    ok: bool
    transient: bool = False
    message: str = ""
    detail: str = ""
    attempted: bool = True

    @property
    def error(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


SENT = SendResult(ok=True)
NOT_ATTEMPTED = SendResult(
    ok=False, transient=True, message="not attempted: the pass ran out of time", attempted=False
)


def transient(message: str, detail: str = "") -> SendResult:
    return SendResult(ok=False, transient=True, message=message, detail=detail)


def permanent(message: str, detail: str = "") -> SendResult:
    return SendResult(ok=False, transient=False, message=message, detail=detail)


def out_of_time(deadline: float | None) -> bool:
    """True once ``deadline`` (``time.monotonic()``) has passed: leave the rest for later."""
    return deadline is not None and time.monotonic() >= deadline
