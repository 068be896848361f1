"""Storage commitment: the durable request rows and the check of what the node holds.

An instance is committed only if the node holds it durably: its newest version is indexed
under the requested SOP class and its file is on disk with the sha256 the index (and the
file's content-derived name) records. Anything else is a failure with a PS3.4 J.3.2 reason.

Request rows are a retry queue on the durable-queue core (storage.queue), like deliveries:
claimed under a lease whose exact timestamp is the claim's token, outcomes recorded only while
the row still carries it. Helpers here never commit: the transaction is the caller's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import queue
from storage.db import insert_on_conflict
from storage.files import FileStore, digest_file
from storage.models import Commitment, Instance

# Failure Reason (0008,1197) values, PS3.4 J.3.2.1.3 / PS3.3 C.14.1.1.
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119

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
    # What earlier attempts hashed (HashMemo.to_json): unchanged files are not hashed again.
    file_hashes: Mapping[str, Any] | None = None

    @property
    def lease(self) -> queue.Lease:
        return queue.Lease(self.commitment_id, self.lease_until)


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


@dataclass(frozen=True)
class FileStamp:
    """What identifies one state of a file without reading it. Any write changes the ctime,
    which no user call can set back, so an equal stamp means the bytes hashed are still there."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileStamp:
        return cls(
            status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
        )


class HashMemo:
    """sha256 of files (by path in the data directory) with the stamp each had when hashed.

    A storage commitment report is retried for hours when its requester is away; hashing
    every referenced clip again each time would read gigabytes for nothing. The memo is kept
    on the request's row, so a retry in another process or after a restart uses it too.
    """

    def __init__(self, known: Mapping[str, Any] | None = None) -> None:
        self._known: dict[str, tuple[FileStamp, str]] = {}
        for path, entry in (known or {}).items():
            try:
                *stamp, sha256 = entry
                self._known[path] = (FileStamp(*(int(v) for v in stamp)), str(sha256))
            except (TypeError, ValueError):
                continue  # a malformed entry only costs a hash
        self.hashed = 0
        self.reused = 0

    def sha256(self, root: Path, relative: str) -> str:
        """The file's sha256; raises OSError (FileNotFoundError) as reading it would."""
        path = root / relative
        before = FileStamp.of(os.stat(path))
        known = self._known.get(relative)
        if known is not None and known[0] == before:
            self.reused += 1
            return known[1]
        digest = digest_file(path).sha256
        self.hashed += 1
        # Remembered only when nothing changed while it was read.
        if FileStamp.of(os.stat(path)) == before:
            self._known[relative] = (before, digest)
        else:
            self._known.pop(relative, None)
        return digest

    def to_json(self) -> dict[str, list[Any]]:
        return {
            path: [
                stamp.device,
                stamp.inode,
                stamp.size,
                stamp.mtime_ns,
                stamp.ctime_ns,
                digest,
            ]
            for path, (stamp, digest) in sorted(self._known.items())
        }


def check_instances(
    store: FileStore,
    references: Sequence[Reference],
    indexed: dict[str, IndexedFile],
    memo: HashMemo | None = None,
) -> list[Verdict]:
    """One verdict per reference, in order. Hashes every referenced file the memo does not
    know unchanged, so call it outside any transaction (on SQLite a transaction holds the
    write lock)."""
    memo = memo if memo is not None else HashMemo()
    return [
        Verdict(ref, _failure(store, ref, indexed.get(ref.sop_instance_uid), memo))
        for ref in references
    ]


def _failure(
    store: FileStore, reference: Reference, row: IndexedFile | None, memo: HashMemo
) -> int | None:
    if row is None:
        return NO_SUCH_OBJECT_INSTANCE
    if row.sop_class_uid != reference.sop_class_uid:
        return CLASS_INSTANCE_CONFLICT
    try:
        actual = memo.sha256(store.root, row.path)
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
    now = queue.utc_now()
    values: dict[str, Any] = {
        "transaction_uid": transaction_uid,
        "calling_ae": calling_ae,
        "calling_address": calling_address,
        "references": [[ref.sop_class_uid, ref.sop_instance_uid] for ref in references],
        "received_at": now,
        "state": queue.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "last_error": None,
        "sent_at": None,
        "event_type": None,
        "failed_count": None,
    }
    insert_on_conflict(
        session, Commitment.__table__, values, update_on=("transaction_uid", "calling_ae")
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
    ids, lease_until = queue.lease_due(session, Commitment, queue.utc_now(), lease_s, limit, *extra)
    if not ids:
        return []
    rows = session.scalars(queue.leased_rows(select(Commitment), Commitment, ids))
    return [
        CommitmentClaim(
            commitment_id=row.id,
            transaction_uid=row.transaction_uid,
            calling_ae=row.calling_ae,
            calling_address=row.calling_address,
            references=tuple(Reference(cls, inst) for cls, inst in row.references),
            attempts=row.attempts,
            lease_until=lease_until,
            file_hashes=row.file_hashes,
        )
        for row in rows
    ]


def mark_sent(
    session: Session,
    claim: CommitmentClaim,
    event_type: int,
    failed_count: int,
    memo: HashMemo | None = None,
) -> bool:
    """The requester acknowledged the report; False if the claim was no longer ours."""
    return queue.update_leased(
        session,
        Commitment,
        claim.lease,
        state=queue.SENT,
        sent_at=queue.utc_now(),
        last_error=None,
        event_type=event_type,
        failed_count=failed_count,
        **_memo_values(memo),
    )


def mark_retry(
    session: Session,
    claim: CommitmentClaim,
    error: str,
    *,
    backoff_s: float,
    max_attempts: int,
    memo: HashMemo | None = None,
) -> str:
    """Pending again after ``backoff_s`` doubling per attempt, or failed after the last one.

    Returns the state recorded ("" if the claim was no longer ours).
    """
    retry = queue.Retry(backoff_s, max_attempts)
    return queue.record_retry(
        session, Commitment, claim.lease, claim.attempts, error, retry, **_memo_values(memo)
    )


def _memo_values(memo: HashMemo | None) -> dict[str, Any]:
    return {} if memo is None else {"file_hashes": memo.to_json()}
