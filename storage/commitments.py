"""Storage commitment: the durable request rows and the check of what the node holds.

An instance is committed only if the node holds it durably: its newest version is indexed
under the requested SOP class and its file is on disk with the sha256 the index (and the
file's content-derived name) records. Anything else is a failure with a PS3.4 J.3.2 reason.

Request rows follow the delivery pattern (echo_node.export.queue): claimed under a lease whose
exact timestamp is the claim's token, outcomes recorded only while the row still carries it.
Helpers here never commit: the transaction is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage import leases
from storage.files import FileStore, digest_file
from storage.models import Commitment, Instance

PENDING, SENT, FAILED = leases.PENDING, "sent", "failed"

# Failure Reason (0008,1197) values, PS3.4 J.3.2.1.3 / PS3.3 C.14.1.1.
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119

_ERROR_LIMIT = 2000
# UIDs per IN (...) query: well under SQLite's bound-parameter limit.
_QUERY_CHUNK = 500


@dataclass(frozen=True)
class Reference:
    """One item of a Referenced SOP Sequence."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Verdict:
    reference: Reference
    failure_reason: int | None  # None: committed

    @property
    def committed(self) -> bool:
        return self.failure_reason is None


@dataclass(frozen=True)
class CommitmentClaim:
    """A request whose report this process sends until ``lease_until``."""

    commitment_id: int
    transaction_uid: str
    calling_ae: str
    calling_address: str | None
    references: tuple[Reference, ...]
    attempts: int  # including this one
    lease_until: datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IndexedFile:
    """What the index says of an instance's newest version."""

    sop_class_uid: str
    path: str  # relative to the data directory
    sha256: str


def indexed_files(session: Session, uids: set[str]) -> dict[str, IndexedFile]:
    """The newest indexed version of each of these SOP Instance UIDs that the node has."""
    found: dict[str, IndexedFile] = {}
    ordered = sorted(uids)
    for start in range(0, len(ordered), _QUERY_CHUNK):
        chunk = ordered[start : start + _QUERY_CHUNK]
        for row in session.scalars(
            select(Instance).where(Instance.sop_instance_uid.in_(chunk)).order_by(Instance.version)
        ):
            # Ascending versions: the newest is the one left, the one the node serves.
            found[row.sop_instance_uid] = IndexedFile(row.sop_class_uid, row.path, row.sha256)
    return found


def check_instances(
    store: FileStore, references: Sequence[Reference], indexed: dict[str, IndexedFile]
) -> list[Verdict]:
    """One verdict per reference, in order. Hashes every referenced file, so call it outside
    any transaction (on SQLite a transaction holds the write lock)."""
    return [
        Verdict(ref, _failure(store, ref, indexed.get(ref.sop_instance_uid))) for ref in references
    ]


def _failure(store: FileStore, reference: Reference, row: IndexedFile | None) -> int | None:
    if row is None:
        return NO_SUCH_OBJECT_INSTANCE
    if row.sop_class_uid != reference.sop_class_uid:
        return CLASS_INSTANCE_CONFLICT
    try:
        actual = digest_file(store.root / row.path).sha256
    except FileNotFoundError:
        return NO_SUCH_OBJECT_INSTANCE
    except OSError:
        return PROCESSING_FAILURE  # present but unreadable: the node cannot vouch for it
    # The name carries the first 16 hex digits of the content's hash (storage.files).
    name_hash = PurePosixPath(row.path).name.split(".")[-2]
    if actual != row.sha256 or not row.sha256.startswith(name_hash):
        return PROCESSING_FAILURE
    return None


def record_request(
    session: Session,
    transaction_uid: str,
    calling_ae: str,
    calling_address: str | None,
    references: Sequence[Reference],
) -> int:
    """Keep a request until its report is sent; returns the row id.

    A request repeating a (calling AE, Transaction UID) pair replaces the earlier one and
    is due at once: the requester asks again because it has not had its answer.
    """
    now = utc_now()
    values: dict[str, Any] = {
        "transaction_uid": transaction_uid,
        "calling_ae": calling_ae,
        "calling_address": calling_address,
        "references": [[ref.sop_class_uid, ref.sop_instance_uid] for ref in references],
        "received_at": now,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "last_error": None,
        "sent_at": None,
        "event_type": None,
        "failed_count": None,
    }
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = module.insert(Commitment.__table__).values(**values)
    keys = ("transaction_uid", "calling_ae")
    session.execute(
        insert.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: v for k, v in values.items() if k not in keys},
        )
    )
    found = session.scalar(
        select(Commitment.id).where(
            Commitment.calling_ae == calling_ae, Commitment.transaction_uid == transaction_uid
        )
    )
    assert found is not None
    return int(found)


def claim_due(
    session: Session, lease_s: float, limit: int, commitment_id: int | None = None
) -> list[CommitmentClaim]:
    """Lease up to ``limit`` pending requests whose report is due (or just the one given)."""
    extra = () if commitment_id is None else (Commitment.id == commitment_id,)
    ids, lease_until = leases.lease_due(session, Commitment, utc_now(), lease_s, limit, *extra)
    if not ids:
        return []
    rows = session.scalars(
        select(Commitment)
        .where(Commitment.id.in_(ids))
        .order_by(Commitment.next_attempt_at, Commitment.id)
        .execution_options(populate_existing=True)
    )
    return [
        CommitmentClaim(
            commitment_id=row.id,
            transaction_uid=row.transaction_uid,
            calling_ae=row.calling_ae,
            calling_address=row.calling_address,
            references=tuple(Reference(cls, inst) for cls, inst in row.references),
            attempts=row.attempts,
            lease_until=lease_until,
        )
        for row in rows
    ]


def _still_ours(claim: CommitmentClaim) -> Any:
    return and_(
        Commitment.id == claim.commitment_id,
        Commitment.state == PENDING,
        Commitment.lease_until == claim.lease_until,
    )


def _update(session: Session, claim: CommitmentClaim, **values: Any) -> bool:
    result = session.execute(
        update(Commitment)
        .where(_still_ours(claim))
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_sent(session: Session, claim: CommitmentClaim, event_type: int, failed_count: int) -> bool:
    """The requester acknowledged the report; False if the claim was no longer ours."""
    return _update(
        session,
        claim,
        state=SENT,
        sent_at=utc_now(),
        last_error=None,
        event_type=event_type,
        failed_count=failed_count,
    )


def mark_retry(
    session: Session, claim: CommitmentClaim, error: str, *, backoff_s: float, max_attempts: int
) -> str:
    """Pending again after ``backoff_s`` doubling per attempt, or failed after the last one.

    Returns the state recorded ("" if the claim was no longer ours).
    """
    if claim.attempts >= max_attempts:
        message = f"gave up after {claim.attempts} attempts: {error}"[:_ERROR_LIMIT]
        return FAILED if _update(session, claim, state=FAILED, last_error=message) else ""
    delay = backoff_s * 2.0 ** max(claim.attempts - 1, 0)
    recorded = _update(
        session,
        claim,
        next_attempt_at=utc_now() + timedelta(seconds=delay),
        last_error=error[:_ERROR_LIMIT],
    )
    return PENDING if recorded else ""
