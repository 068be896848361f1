"""Database tables (docs/ARCHITECTURE.md §3).

Changes here need an Alembic migration in storage/migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

UID = String(64)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC on every engine: SQLite keeps no time zone, so it is restored here."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the node stores UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    # Patient attributes are kept for display with --show-phi and for copying into results;
    # they never go to logs or metrics.
    patient_name: Mapped[str | None] = mapped_column(String(324))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8))
    study_time: Mapped[str | None] = mapped_column(String(16))
    accession_number: Mapped[str | None] = mapped_column(String(16))
    study_description: Mapped[str | None] = mapped_column(String(64))
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The stable-study trigger compares this with the quiet period.
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # A study of the node's own self-test (echo_node.selftest): processed like any study,
    # never sent to destinations, removed once compared with its ground truth.
    qa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[str | None] = mapped_column(String(12))
    series_description: Mapped[str | None] = mapped_column(String(64))

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """One stored file. The same SOP Instance UID received with other bytes is a new version."""

    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("sop_instance_uid", "version", name="uq_instances_sop_version"),
        Index("ix_instances_sop_sha", "sop_instance_uid", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    version: Mapped[int] = mapped_column(Integer)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(400))
    source_ae: Mapped[str | None] = mapped_column(String(16))
    source_address: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    series: Mapped[Series] = relationship(back_populates="instances")


class ApiToken(Base):
    """A bearer token for the DICOMweb service; only its sha256 is kept (the token is shown once).

    Scope "read" allows QIDO-RS and WADO-RS; "write" allows STOW-RS as well.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(Base):
    """One processing run of a study (docs/ARCHITECTURE.md §3): queued → running → done |
    failed | skipped.

    ``content_key`` is the sha256 of the processable instances the study held when the job was
    made; it is unique per study, so the same content never gets two automatic jobs however
    many schedulers sweep. Reprocessing jobs have no content key.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("study_id", "content_key", name="uq_jobs_study_content"),
        Index("ix_jobs_claim_order", "state", "priority", "not_before", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    content_key: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # "stable", "reprocess"
    pipelines: Mapped[str | None] = mapped_column(String(200))  # comma list; None = all
    state: Mapped[str] = mapped_column(String(16), index=True)
    # Claimed highest first: a study that just arrived (live) before a reprocessing backlog.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What happened, for `echo-node jobs show`: the outcome in words and each step's timing.
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Where a running job is: clip i of n, the step, seconds so far (echo_node.processing).
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    study: Mapped[Study] = relationship()


class JobClip(Base):
    """What a job decided about one instance: its view, who decided, and each pipeline's status."""

    __tablename__ = "job_clips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    # None once retention has deleted the instance; the decision stays for `jobs show`.
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    view: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# The key of JobClip.detail that holds the clip's whole result (ai/result_json.py), which a
# reprocess limited to some pipelines carries forward.
CLIP_RESULT_KEY = "result"


class FindingRow(Base):
    """One measured value, with what produced it (docs/ARCHITECTURE.md §3 ``findings``)."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    pipeline: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    frame: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str | None] = mapped_column(String(64))


class Output(Base):
    """A SOP instance the node created (SR or secondary capture), stored like any instance."""

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    kind: Mapped[str] = mapped_column(String(8))  # "sr", "sc"
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))

    instance: Mapped[Instance] = relationship()


class Delivery(Base):
    """One output to one destination: pending → sent | failed, retried with backoff."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("output_id", "destination", name="uq_deliveries_output_destination"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    output: Mapped[Output] = relationship()


class Commitment(Base):
    """A Storage Commitment Push Model request (PS3.4 J.3) and the state of its report.

    The request is kept so that the N-EVENT-REPORT still goes out after a restart; the check
    of each instance is made when the report is built, so it says what the node holds then.
    ``references`` is the request's Referenced SOP Sequence as ``[class_uid, instance_uid]``
    pairs. pending → sent | failed, retried with backoff like deliveries.
    """

    __tablename__ = "commitments"
    __table_args__ = (
        UniqueConstraint("calling_ae", "transaction_uid", name="uq_commitments_ae_transaction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_uid: Mapped[str] = mapped_column(UID)
    calling_ae: Mapped[str] = mapped_column(String(16))
    calling_address: Mapped[str | None] = mapped_column(String(64))
    references: Mapped[list[list[str]]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the report that went out said: 1 all committed, 2 some failed (PS3.4 J.3.3).
    event_type: Mapped[int | None] = mapped_column(Integer)
    failed_count: Mapped[int | None] = mapped_column(Integer)
    # The sha256 of each referenced file with the stat it had when hashed
    # (storage.commitments.HashMemo), so a retry does not read unchanged files again.
    file_hashes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RetentionDeletion(Base):
    """What the retention policy deleted from one study (echo_node.retention), and when.

    The row is written in the transaction that deletes the index rows and lists the files;
    the files are removed after the commit and ``files_removed_at`` set, so a crash in
    between leaves a list the next sweep finishes rather than unindexed files.
    """

    __tablename__ = "retention_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "received" or "results"
    reason: Mapped[str] = mapped_column(Text)
    instances: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[list[str]] = mapped_column(JSON)  # relative to the data directory
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    files_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class SelfTest(Base):
    """One run of `echo-node selftest` (echo_node.selftest): a phantom study pushed through the
    node and its reported values compared with the phantom's ground truth.

    ``passed`` is None while it runs; ``detail`` holds every comparison and note.
    """

    __tablename__ = "selftests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    passed: Mapped[bool | None] = mapped_column(Boolean)
    study_instance_uid: Mapped[str | None] = mapped_column(UID)
    trigger: Mapped[str] = mapped_column(String(16))  # "command" or "schedule"
    summary: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
