"""Which instances of a study are processed: one rule for the scheduler and the worker.

An instance counts when its series' modality is in ``process_modalities``, its sender is in
``process_calling_aes`` and its SOP class in ``process_sop_classes`` (each when set), it is the
newest version of its SOP Instance UID, and it is not something the node made itself (its own
results must never trigger a new job). A self-test study (``Study.qa``) comes from the node's
own AE title, so ``process_calling_aes`` does not apply to it.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from echo_node.ingest import OWN_OUTPUT_ADDRESS
from echo_node.settings import Settings
from storage.models import Instance, Output, Series, Study

__all__ = ["OWN_OUTPUT_ADDRESS", "content_key", "processable_instances"]


def processable_instances(session: Session, study_id: int, settings: Settings) -> list[Instance]:
    newest = (
        select(Instance.sop_instance_uid, func.max(Instance.version).label("version"))
        .join(Series, Series.id == Instance.series_id)
        .where(Series.study_id == study_id)
        .group_by(Instance.sop_instance_uid)
        .subquery()
    )
    query = (
        select(Instance)
        .join(Series, Series.id == Instance.series_id)
        .join(
            newest,
            (newest.c.sop_instance_uid == Instance.sop_instance_uid)
            & (newest.c.version == Instance.version),
        )
        .where(Series.study_id == study_id)
        .where(Series.modality.in_(settings.process_modalities))
        .where(Instance.id.not_in(select(Output.instance_id)))
        .where(
            (Instance.source_address.is_(None)) | (Instance.source_address != OWN_OUTPUT_ADDRESS)
        )
        .order_by(Instance.sop_instance_uid)
    )
    if settings.process_calling_aes and not session.scalar(
        select(Study.qa).where(Study.id == study_id)
    ):
        query = query.where(Instance.source_ae.in_(settings.process_calling_aes))
    if settings.process_sop_classes:
        query = query.where(Instance.sop_class_uid.in_(settings.process_sop_classes))
    return list(session.scalars(query))


def content_key(instances: list[Instance]) -> str:
    """sha256 over the processable instances' UIDs and contents: equal keys, equal input."""
    digest = hashlib.sha256()
    for instance in sorted(instances, key=lambda item: item.sop_instance_uid):
        digest.update(f"{instance.sop_instance_uid}:{instance.sha256}\n".encode())
    return digest.hexdigest()
