"""Carrying out the retention policy: index rows first, then the files.

For each due study, one transaction assesses it again (another process may have changed it:
new instances, a delivery requeued), deletes its index rows and records the deletion with the
list of files in ``retention_deletions``. The files are removed after the commit and the
record marked done; a crash in between leaves the record, which the next sweep finishes, so
the store never holds indexed rows without files or forgotten files without a record.

Received instances: their rows go, the job decisions that named them keep their UID (for
`echo-node jobs show`) without the link. Results: the whole study goes from the database,
jobs, findings, outputs and deliveries included; ``retention_deletions`` keeps its UID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from echo_node.retention.policy import Assessment, Kind, assess, commitment_states, review
from echo_node.settings import Settings
from storage.files import FileStore, fsync_dir
from storage.models import (
    Delivery,
    FindingRow,
    Instance,
    Job,
    JobClip,
    Output,
    RetentionDeletion,
    Series,
    Study,
)

logger = logging.getLogger(__name__)

# Called once per study deleted: (kind, instances, bytes), e.g. to count it in the metrics.
Counted = Callable[[Kind, int, int], None]


@dataclass(frozen=True)
class Deleted:
    study_instance_uid: str
    kind: Kind
    instances: int
    bytes: int
    reason: str


def sweep(
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    now: datetime,
    counted: Counted | None = None,
) -> list[Deleted]:
    """Delete what the policy says is due at ``now``; finish removals a crash interrupted."""
    finish_removals(sessions, store)
    with sessions() as session:
        due = [item for item in review(session, settings, now) if item.due(now)]
    deleted = []
    for item in due:
        done = _delete_study(sessions, store, settings, now, item.study_id)
        if done is None:
            continue
        deleted.append(done)
        if counted is not None:
            counted(done.kind, done.instances, done.bytes)
    return deleted


def _delete_study(
    sessions: sessionmaker[Session],
    store: FileStore,
    settings: Settings,
    now: datetime,
    study_id: int,
) -> Deleted | None:
    with sessions.begin() as session:
        item = assess(session, settings, study_id, commitment_states(session))
        if item is None or not item.due(now):
            return None  # changed since the review: no longer due
        _delete_rows(session, item)
        record = RetentionDeletion(
            study_instance_uid=item.study_instance_uid,
            kind=item.kind,
            reason=item.reason,
            instances=len(item.files),
            bytes=item.bytes,
            files=[file.path for file in item.files],
            deleted_at=now,
            files_removed_at=None,
        )
        session.add(record)
        session.flush()
        record_id = record.id
    remove_files(store, [file.path for file in item.files])
    with sessions.begin() as session:
        session.execute(
            update(RetentionDeletion)
            .where(RetentionDeletion.id == record_id)
            .values(files_removed_at=now)
        )
    logger.info(
        "deleted by the retention policy",
        extra={
            "study_instance_uid": item.study_instance_uid,
            "kind": item.kind,
            "instances": len(item.files),
            "bytes": item.bytes,
            "sop_instance_uids": [file.sop_instance_uid for file in item.files],
            "reason": item.reason,
        },
    )
    return Deleted(item.study_instance_uid, item.kind, len(item.files), item.bytes, item.reason)


def _delete_rows(session: Session, item: Assessment) -> None:
    ids = [file.instance_id for file in item.files]
    if item.kind == "received":
        session.execute(
            update(JobClip).where(JobClip.instance_id.in_(ids)).values(instance_id=None)
        )
        session.execute(delete(Instance).where(Instance.id.in_(ids)))
        session.execute(
            delete(Series).where(
                Series.study_id == item.study_id,
                ~exists().where(Instance.series_id == Series.id),
            )
        )
        return
    delete_study_rows(session, item.study_id)


def delete_study_rows(session: Session, study_id: int) -> None:
    """Every row of a study: deliveries, outputs, findings, job clips, jobs, instances, series
    and the study itself (the caller removes the files, after the commit)."""
    jobs = select(Job.id).where(Job.study_id == study_id).scalar_subquery()
    outputs = select(Output.id).where(Output.study_id == study_id).scalar_subquery()
    session.execute(delete(Delivery).where(Delivery.output_id.in_(outputs)))
    session.execute(delete(Output).where(Output.study_id == study_id))
    session.execute(delete(FindingRow).where(FindingRow.job_id.in_(jobs)))
    session.execute(delete(JobClip).where(JobClip.job_id.in_(jobs)))
    session.execute(delete(Job).where(Job.study_id == study_id))
    series = select(Series.id).where(Series.study_id == study_id).scalar_subquery()
    session.execute(delete(Instance).where(Instance.series_id.in_(series)))
    session.execute(delete(Series).where(Series.study_id == study_id))
    session.execute(delete(Study).where(Study.id == study_id))


def remove_files(store: FileStore, paths: list[str]) -> None:
    """Unlink the files and the series and study directories left empty, durably."""
    changed: set[Path] = set()
    for relative in paths:
        path = store.root / relative
        path.unlink(missing_ok=True)
        changed.add(path.parent)
    for directory in sorted(changed.copy(), key=lambda p: len(p.parts), reverse=True):
        while directory != store.instances and store.instances in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (another version, a new arrival), or gone already
                break
            changed.discard(directory)
            changed.add(directory.parent)
            directory = directory.parent
    for directory in changed:
        if directory.is_dir():
            fsync_dir(directory)


def finish_removals(sessions: sessionmaker[Session], store: FileStore) -> int:
    """Remove the files of deletions recorded but not finished (a crash after the commit)."""
    with sessions() as session:
        pending = session.execute(
            select(RetentionDeletion.id, RetentionDeletion.files).where(
                RetentionDeletion.files_removed_at.is_(None)
            )
        ).all()
    for record_id, files in pending:
        remove_files(store, list(files))
        with sessions.begin() as session:
            session.execute(
                update(RetentionDeletion)
                .where(RetentionDeletion.id == record_id)
                .values(files_removed_at=datetime.now(UTC))
            )
    return len(pending)
