"""Finding stored instances for WADO-RS and STOW-RS responses: newest version of each SOP UID."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from storage.files import FileStore
from storage.models import Instance, Series, Study


@dataclass(frozen=True)
class StoredInstance:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    number_of_frames: int | None
    path: Path
    sha256: str


def newest_versions() -> Select[Any]:
    """Ids of the newest version of every SOP Instance UID (older versions stay retrievable
    only through the database, not through DICOMweb, which knows one instance per UID)."""
    newest = (
        select(Instance.sop_instance_uid, func.max(Instance.version).label("version"))
        .group_by(Instance.sop_instance_uid)
        .subquery()
    )
    return select(Instance.id).join(
        newest,
        (Instance.sop_instance_uid == newest.c.sop_instance_uid)
        & (Instance.version == newest.c.version),
    )


def find_instances(
    session: Session,
    store: FileStore,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> list[StoredInstance]:
    query = (
        select(Study.study_instance_uid, Series.series_instance_uid, Instance)
        .join(Series, Series.study_id == Study.id)
        .join(Instance, Instance.series_id == Series.id)
        .where(Study.study_instance_uid == study, Instance.id.in_(newest_versions()))
        .order_by(Series.id, Instance.id)
    )
    if series is not None:
        query = query.where(Series.series_instance_uid == series)
    if instance is not None:
        query = query.where(Instance.sop_instance_uid == instance)
    return [
        StoredInstance(
            study_uid,
            series_uid,
            row.sop_instance_uid,
            row.sop_class_uid,
            row.transfer_syntax_uid,
            row.number_of_frames,
            store.root / row.path,
            row.sha256,
        )
        for study_uid, series_uid, row in session.execute(query)
    ]


def series_and_class(
    session: Session, sop_instance_uid: str, version: int
) -> tuple[str | None, str | None]:
    """Series Instance UID and SOP Class UID of one stored version."""
    row = session.execute(
        select(Series.series_instance_uid, Instance.sop_class_uid)
        .join(Instance, Instance.series_id == Series.id)
        .where(Instance.sop_instance_uid == sop_instance_uid, Instance.version == version)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)
