"""Indexing one received file: study/series/instance rows, deduplication and versions.

The caller owns the transaction (helpers do not commit), so indexing an instance and
anything queued with it commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.db import insert_on_conflict
from storage.models import Instance, Series, Study


@dataclass(frozen=True)
class InstanceHeader:
    """What the index keeps of an instance's header; UIDs already validated."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str | None
    number_of_frames: int | None
    patient_name: str | None
    patient_id: str | None
    study_date: str | None
    study_time: str | None
    accession_number: str | None
    study_description: str | None
    series_number: str | None
    series_description: str | None


@dataclass(frozen=True)
class Receipt:
    """Who sent the file and what it is on disk."""

    sha256: str
    size: int
    path: str
    source_ae: str | None
    source_address: str | None
    received_at: datetime
    # False for what the node stores itself: the study's last_received_at (which the
    # stable-study trigger watches) is left as it was.
    new_content: bool = True


def find_version(session: Session, sop_instance_uid: str, sha256: str) -> Instance | None:
    """The stored version of this SOP instance with exactly these bytes, if any."""
    return session.scalars(
        select(Instance).where(
            Instance.sop_instance_uid == sop_instance_uid, Instance.sha256 == sha256
        )
    ).first()


def ensure_study(session: Session, study_instance_uid: str, now: datetime) -> tuple[Study, bool]:
    """The study's row, made (with no series yet) if the node holds none; True if made here.

    For work that refers to a study before any of its instances arrives (a retrieval's job);
    add_instance fills its patient attributes from the first instance."""
    existing = session.scalars(
        select(Study).where(Study.study_instance_uid == study_instance_uid)
    ).first()
    if existing is not None:
        return existing, False
    insert_on_conflict(
        session,
        Study.__table__,
        {
            "study_instance_uid": study_instance_uid,
            "first_received_at": now,
            "last_received_at": now,
        },
    )
    study = session.scalars(
        select(Study).where(Study.study_instance_uid == study_instance_uid)
    ).one()
    return study, True


@dataclass(frozen=True)
class Indexed:
    """An instance's row: the one just inserted, or the stored one with the same bytes."""

    id: int
    version: int
    path: str
    duplicate: bool


_INSTANCES = cast(Table, Instance.__table__)
_STUDIES = cast(Table, Study.__table__)
_SERIES = cast(Table, Series.__table__)
# Study attributes taken from the first instance that has them (an empty value counts as
# missing, so a later instance fills it in).
_STUDY_ATTRIBUTES = (
    "patient_name",
    "patient_id",
    "study_date",
    "study_time",
    "accession_number",
    "study_description",
)

# Statements are built once, with bind parameters: building one costs more than running it.
_VERSIONS = select(
    _INSTANCES.c.id, _INSTANCES.c.version, _INSTANCES.c.sha256, _INSTANCES.c.path
).where(_INSTANCES.c.sop_instance_uid == bindparam("sop_instance_uid"))
_LATEST_VERSION = select(func.max(_INSTANCES.c.version)).where(
    _INSTANCES.c.sop_instance_uid == bindparam("sop_instance_uid")
)
_SERIES_ID = select(_SERIES.c.id).where(
    _SERIES.c.series_instance_uid == bindparam("series_instance_uid")
)
_INSERT_INSTANCE = insert(_INSTANCES).returning(_INSTANCES.c.id)


def index_instance(session: Session, header: InstanceHeader, receipt: Receipt) -> Indexed:
    """The row of a received instance: the stored version with the same bytes (a duplicate,
    stored once), else a new row, the next version of its SOP Instance UID.

    Plain SQL statements (SQLAlchemy Core) on the session's connection, no ORM unit of work:
    four statements for an instance of a known series where the ORM ran eight, at about a
    quarter of the CPU time (docs/ARCHITECTURE.md, "Ingest: one C-STORE, thread by thread").
    Two writers racing for the same new version (possible on PostgreSQL) make the second's
    insert fail with IntegrityError; the caller retries, and the retry sees the first's row.
    """
    connection = session.connection()
    stored = connection.execute(_VERSIONS, {"sop_instance_uid": header.sop_instance_uid}).all()
    for row in stored:
        if row.sha256 == receipt.sha256:
            return Indexed(row.id, row.version, row.path, duplicate=True)
    latest = max((row.version for row in stored), default=0)
    return _insert(session, header, receipt, latest + 1)


def add_instance(session: Session, header: InstanceHeader, receipt: Receipt) -> Indexed:
    """Insert the instance row (next version of its SOP Instance UID) and its study/series."""
    latest = session.connection().scalar(
        _LATEST_VERSION, {"sop_instance_uid": header.sop_instance_uid}
    )
    return _insert(session, header, receipt, (latest or 0) + 1)


def _insert(session: Session, header: InstanceHeader, receipt: Receipt, version: int) -> Indexed:
    connection = session.connection()
    study_id = connection.execute(
        _study_upsert(connection.dialect.name, receipt.new_content),
        {
            "study_instance_uid": header.study_instance_uid,
            "first_received_at": receipt.received_at,
            "last_received_at": receipt.received_at,
            **{attribute: getattr(header, attribute) or None for attribute in _STUDY_ATTRIBUTES},
        },
    ).scalar_one()
    series_id = _series_id(session, header, study_id)
    instance_id = connection.execute(
        _INSERT_INSTANCE,
        {
            "series_id": series_id,
            "sop_instance_uid": header.sop_instance_uid,
            "version": version,
            "sop_class_uid": header.sop_class_uid,
            "transfer_syntax_uid": header.transfer_syntax_uid,
            "number_of_frames": header.number_of_frames,
            "size": receipt.size,
            "sha256": receipt.sha256,
            "path": receipt.path,
            "source_ae": receipt.source_ae,
            "source_address": receipt.source_address,
            "received_at": receipt.received_at,
        },
    ).scalar_one()
    return Indexed(int(instance_id), version, receipt.path, duplicate=False)


@cache
def _study_upsert(dialect: str, new_content: bool) -> Any:
    """Insert the study or update it, in one statement: a missing attribute is filled in, and
    new content moves last_received_at forward (never back: writers commit out of order)."""
    postgres = dialect == "postgresql"
    module: Any = postgresql if postgres else sqlite
    statement = module.insert(_STUDIES).values(
        {
            name: bindparam(name)
            for name in (
                "study_instance_uid",
                "first_received_at",
                "last_received_at",
                *_STUDY_ATTRIBUTES,
            )
        }
    )
    columns, proposed = _STUDIES.c, statement.excluded
    updates: dict[str, Any] = {
        attribute: func.coalesce(
            func.nullif(columns[attribute], ""),
            func.nullif(proposed[attribute], ""),
            columns[attribute],
        )
        for attribute in _STUDY_ATTRIBUTES
    }
    if new_content:
        latest = func.greatest if postgres else func.max  # SQLite's max(a, b) is scalar
        updates["last_received_at"] = latest(columns.last_received_at, proposed.last_received_at)
    return statement.on_conflict_do_update(
        index_elements=[columns.study_instance_uid], set_=updates
    ).returning(columns.id)


def _series_id(session: Session, header: InstanceHeader, study_id: int) -> int:
    connection = session.connection()
    key = {"series_instance_uid": header.series_instance_uid}
    series_id = connection.scalar(_SERIES_ID, key)
    if series_id is None:
        insert_on_conflict(
            session,
            _SERIES,
            {
                "study_id": study_id,
                "series_instance_uid": header.series_instance_uid,
                "modality": header.modality,
                "series_number": header.series_number,
                "series_description": header.series_description,
            },
        )
        series_id = connection.execute(_SERIES_ID, key).scalar_one()
    return int(series_id)
