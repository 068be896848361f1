"""Indexing one received file: study/series/instance rows, deduplication and versions.

The caller owns the transaction (helpers do not commit), so indexing an instance and
anything queued with it commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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


def _insert_ignoring_conflict(session: Session, table: Any, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(table).values(**values).on_conflict_do_nothing())


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
    _insert_ignoring_conflict(
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


def add_instance(session: Session, header: InstanceHeader, receipt: Receipt) -> Instance:
    """Insert the instance row (next version of its SOP Instance UID) and its study/series."""
    _insert_ignoring_conflict(
        session,
        Study.__table__,
        {
            "study_instance_uid": header.study_instance_uid,
            "first_received_at": receipt.received_at,
            "last_received_at": receipt.received_at,
        },
    )
    study = session.scalars(
        select(Study).where(Study.study_instance_uid == header.study_instance_uid)
    ).one()
    if receipt.new_content:
        study.last_received_at = max(study.last_received_at, receipt.received_at)
    for attribute in (
        "patient_name",
        "patient_id",
        "study_date",
        "study_time",
        "accession_number",
        "study_description",
    ):
        value = getattr(header, attribute)
        if value and not getattr(study, attribute):
            setattr(study, attribute, value)

    _insert_ignoring_conflict(
        session,
        Series.__table__,
        {
            "study_id": study.id,
            "series_instance_uid": header.series_instance_uid,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
        },
    )
    series = session.scalars(
        select(Series).where(Series.series_instance_uid == header.series_instance_uid)
    ).one()

    latest = session.scalar(
        select(func.max(Instance.version)).where(
            Instance.sop_instance_uid == header.sop_instance_uid
        )
    )
    instance = Instance(
        series_id=series.id,
        sop_instance_uid=header.sop_instance_uid,
        version=(latest or 0) + 1,
        sop_class_uid=header.sop_class_uid,
        transfer_syntax_uid=header.transfer_syntax_uid,
        number_of_frames=header.number_of_frames,
        size=receipt.size,
        sha256=receipt.sha256,
        path=receipt.path,
        source_ae=receipt.source_ae,
        source_address=receipt.source_address,
        received_at=receipt.received_at,
    )
    session.add(instance)
    session.flush()
    return instance
