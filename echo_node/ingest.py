"""The one path every received instance takes (DIMSE, STOW-RS, import): check, store, index.

An instance is acknowledged only when this returns ``stored`` or ``duplicate``: by then its
file is fsynced under its final name and its row is committed. Anything refused is kept in
quarantine with the reason, never dropped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.files import FILE_MODE, FileStore, digest_file, fsync_file
from storage.index import InstanceHeader, Receipt, add_instance, find_version
from storage.uids import InvalidUID, checked_uid

if TYPE_CHECKING:
    from echo_node.metrics.instruments import Metrics

logger = logging.getLogger(__name__)

# Values larger than this stay on disk while the header is read, so a 500 MB clip is never
# loaded to check its UIDs.
_DEFER_SIZE = 64 * 1024
# Concurrent writers on PostgreSQL can both pick the next version number; the loser retries.
_INDEX_ATTEMPTS = 3

Outcome = Literal["stored", "duplicate", "quarantined", "failed"]
# How an instance arrived ("node": the node's own SR and overlays); a metrics label.
Transport = Literal["dimse", "stowrs", "import", "node"]

# The peer address recorded on what the node stores itself (its SR and overlays). Such
# instances do not count as new content of their study: they must not make it "unstable"
# again and queue another job.
OWN_OUTPUT_ADDRESS = "echo-node"


@dataclass(frozen=True)
class Peer:
    ae_title: str | None
    address: str | None
    transport: Transport

    def describe(self) -> dict[str, Any]:
        return {"peer_ae": self.ae_title, "peer_address": self.address, "transport": self.transport}


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    reason: str = ""
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    version: int | None = None
    path: Path | None = None

    @property
    def acknowledged(self) -> bool:
        return self.outcome in ("stored", "duplicate")


@dataclass(frozen=True)
class Staged:
    """A checked file hashed and fsynced in tmp/, with the name and row it is to get."""

    temp: Path
    target: Path
    header: InstanceHeader
    receipt: Receipt


class RejectedInstance(ValueError):
    """The bytes are not an instance the node can keep under its UIDs; says why."""


@dataclass(frozen=True)
class Ingestor:
    """What storing needs: the file store, a session factory, the metrics. Shared by threads."""

    store: FileStore
    sessions: sessionmaker[Session]
    metrics: Metrics

    def ingest(
        self, temp: Path, peer: Peer, expected_sop_instance_uid: str | None = None
    ) -> IngestResult:
        """Store the Part 10 file at ``temp`` (inside the store's tmp/) or quarantine it."""
        started = time.perf_counter()
        try:
            size = temp.stat().st_size
        except OSError:
            size = 0
        result = self._ingest(temp, peer, expected_sop_instance_uid)
        self.metrics.ingested(peer.transport, result.outcome, size, time.perf_counter() - started)
        return result

    def _ingest(
        self, temp: Path, peer: Peer, expected_sop_instance_uid: str | None
    ) -> IngestResult:
        try:
            header = read_header(temp, expected_sop_instance_uid)
        except RejectedInstance as exc:
            return self._quarantine(temp, peer, str(exc), expected_sop_instance_uid)

        staged = self.stage(temp, header, peer)
        try:
            return self._index(staged)
        except (SQLAlchemyError, OSError) as exc:
            logger.error(
                "indexing failed, instance kept in quarantine",
                extra={"sop_instance_uid": header.sop_instance_uid, "error": type(exc).__name__},
            )
            if temp.exists():
                self._quarantine(temp, peer, f"indexing failed: {type(exc).__name__}", None)
            return IngestResult(
                "failed",
                f"storage error: {type(exc).__name__}",
                sop_instance_uid=header.sop_instance_uid,
            )

    def stage(self, temp: Path, header: InstanceHeader, peer: Peer) -> Staged:
        """Hash and fsync the checked file in tmp/: ready for its final name and its row."""
        os.chmod(temp, FILE_MODE)
        # The slow part (hash and fsync) happens before the transaction, so other writers are
        # held up only by the rename and the row.
        digest = digest_file(temp)
        fsync_file(temp)
        target = self.store.instance_path(
            header.study_instance_uid,
            header.series_instance_uid,
            header.sop_instance_uid,
            digest.sha256,
        )
        receipt = Receipt(
            sha256=digest.sha256,
            size=digest.size,
            path=self.store.relative(target),
            source_ae=peer.ae_title,
            source_address=peer.address,
            received_at=datetime.now(UTC),
            new_content=peer.address != OWN_OUTPUT_ADDRESS,
        )
        return Staged(temp, target, header, receipt)

    def _index(self, staged: Staged) -> IngestResult:
        temp, target, header, receipt = staged.temp, staged.target, staged.header, staged.receipt
        # The file takes its final, content-derived name before the transaction, so the lock
        # other writers (threads, ingest processes) wait for covers only the rows. A crash in
        # between leaves a file without a row: never acknowledged, and the same bytes sent
        # again land on that very name.
        self.store.commit_instance(temp, target)
        for attempt in range(1, _INDEX_ATTEMPTS + 1):
            try:
                with self.sessions.begin() as session:
                    existing = find_version(session, header.sop_instance_uid, receipt.sha256)
                    if existing is not None:
                        return IngestResult(
                            "duplicate",
                            sop_instance_uid=header.sop_instance_uid,
                            study_instance_uid=header.study_instance_uid,
                            version=existing.version,
                            path=self.store.root / existing.path,
                        )
                    version = add_instance(session, header, receipt).version
                break
            except IntegrityError:
                if attempt == _INDEX_ATTEMPTS:
                    raise
        if version > 1:
            logger.warning(
                "same SOP Instance UID received with different bytes; kept as a new version",
                extra={"sop_instance_uid": header.sop_instance_uid, "version": version},
            )
        logger.info(
            "stored",
            extra={
                "sop_instance_uid": header.sop_instance_uid,
                "study_instance_uid": header.study_instance_uid,
                "bytes": receipt.size,
                "peer_ae": receipt.source_ae,
            },
        )
        return IngestResult(
            "stored",
            sop_instance_uid=header.sop_instance_uid,
            study_instance_uid=header.study_instance_uid,
            version=version,
            path=target,
        )

    def _quarantine(
        self, temp: Path, peer: Peer, reason: str, sop_instance_uid: str | None
    ) -> IngestResult:
        sidecar = self.store.quarantine(
            temp, reason, {**peer.describe(), "sop_instance_uid_in_command": sop_instance_uid}
        )
        logger.warning(
            "instance refused and quarantined",
            extra={"reason": reason, "quarantine": sidecar.name, **peer.describe()},
        )
        return IngestResult("quarantined", reason, sop_instance_uid=sop_instance_uid)


def read_header(path: Path, expected_sop_instance_uid: str | None = None) -> InstanceHeader:
    """Parse and check the header of a Part 10 file; raise RejectedInstance with the reason."""
    try:
        with path.open("rb") as handle:
            dataset = dcmread(handle, defer_size=_DEFER_SIZE)
            # Deferred values are skipped by seeking; a position past the end means the file
            # was cut short inside one of them (usually Pixel Data).
            end, size = handle.tell(), os.fstat(handle.fileno()).st_size
    except InvalidDicomError as exc:
        raise RejectedInstance(f"not DICOM: {exc}") from None
    except Exception as exc:  # pydicom raises many kinds on damaged input; all mean the same
        raise RejectedInstance(f"cannot parse dataset: {type(exc).__name__}: {exc}") from None
    if end > size:
        raise RejectedInstance(f"truncated: {size} bytes on file, {end} declared")
    if len(dataset) == 0:
        # pydicom returns no elements at all when the data end inside one (its EOFError is
        # turned into a warning), so an empty dataset here is nearly always a cut-off one.
        raise RejectedInstance(f"truncated or empty dataset ({size} bytes on file)")
    try:
        return _header(dataset, expected_sop_instance_uid)
    except InvalidUID as exc:
        raise RejectedInstance(str(exc)) from None


def _header(dataset: Dataset, expected_sop_instance_uid: str | None) -> InstanceHeader:
    sop_uid = checked_uid(dataset.get("SOPInstanceUID"), "SOPInstanceUID")
    if expected_sop_instance_uid is not None and sop_uid != expected_sop_instance_uid:
        raise RejectedInstance(
            f"SOPInstanceUID {sop_uid} differs from the request's {expected_sop_instance_uid}"
        )
    meta = dataset.file_meta
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    frames = dataset.get("NumberOfFrames")
    return InstanceHeader(
        study_instance_uid=checked_uid(dataset.get("StudyInstanceUID"), "StudyInstanceUID"),
        series_instance_uid=checked_uid(dataset.get("SeriesInstanceUID"), "SeriesInstanceUID"),
        sop_instance_uid=sop_uid,
        sop_class_uid=checked_uid(dataset.get("SOPClassUID"), "SOPClassUID"),
        transfer_syntax_uid=checked_uid(transfer_syntax, "TransferSyntaxUID"),
        modality=_text(dataset, "Modality", 16),
        number_of_frames=int(frames) if frames not in (None, "") else None,
        patient_name=_text(dataset, "PatientName", 324),
        patient_id=_text(dataset, "PatientID", 64),
        study_date=_text(dataset, "StudyDate", 8),
        study_time=_text(dataset, "StudyTime", 16),
        accession_number=_text(dataset, "AccessionNumber", 16),
        study_description=_text(dataset, "StudyDescription", 64),
        series_number=_text(dataset, "SeriesNumber", 12),
        series_description=_text(dataset, "SeriesDescription", 64),
    )


def _text(dataset: Dataset, keyword: str, limit: int) -> str | None:
    # Cut to the column's size: a scanner's over-long value must not cost the instance.
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    return str(value)[:limit]
