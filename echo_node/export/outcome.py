"""What sending one file to a peer came to, shared by the DIMSE and DICOMweb senders."""

from __future__ import annotations

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
    """``ok``: the peer acknowledged it. Otherwise ``transient`` says whether a retry may help."""

    ok: bool
    transient: bool = False
    message: str = ""


SENT = SendResult(ok=True)


def transient(message: str) -> SendResult:
    return SendResult(ok=False, transient=True, message=message)


def permanent(message: str) -> SendResult:
    return SendResult(ok=False, transient=False, message=message)
