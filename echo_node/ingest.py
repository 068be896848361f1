"""The one path every received instance takes (DIMSE, STOW-RS, import): check, store, index.

An instance is acknowledged only when this returns ``stored`` or ``duplicate``: by then its
file is fsynced under its final name and its row is committed. Anything refused is kept in
quarantine with the reason, never dropped.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from echo_node.structure import MalformedDataset, check_lengths, dataset_start
from storage.db import database_full
from storage.files import (
    FILE_MODE,
    FileDigest,
    FileStore,
    digest_file,
    fsync_file,
    out_of_space,
)
from storage.index import InstanceHeader, Receipt, index_instance
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
# How an instance arrived ("node": the node's own SR and overlays; "retrieve": brought back
# from a source by `reprocess --from`, over C-GET or WADO-RS); a metrics label.
Transport = Literal["dimse", "stowrs", "import", "node", "retrieve"]

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
    out_of_space: bool = False  # failed because a disk (files or database) is full

    @property
    def acknowledged(self) -> bool:
        return self.outcome in ("stored", "duplicate")


class Spooled(Protocol):
    """A received file's writer that hashed it and fsynced it as it arrived
    (echo_node.dimse.pynetdicom_patches.SpoolFile)."""

    def digest(self) -> FileDigest | None:
        """sha256 and size of the whole file; None if it was not hashed."""

    def wait_synced(self) -> bool:
        """Wait for the file's fsync: True once done, False if none was made (raises the
        fsync's OSError)."""


@dataclass(frozen=True)
class Staged:
    """A checked file hashed and fsynced in tmp/, with the name and row it is to get."""

    temp: Path
    target: Path
    header: InstanceHeader
    receipt: Receipt


class RejectedInstance(ValueError):
    """The bytes are not an instance the node can keep under its UIDs; says why.

    The message goes to logs and to the sender, so it names attributes, tags and sizes,
    never a value; ``detail`` (a library's own message, which may quote values) goes only to
    the quarantine sidecar, beside the refused bytes themselves.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Ingestor:
    """What storing needs: the file store, a session factory, the metrics. Shared by threads."""

    store: FileStore
    sessions: sessionmaker[Session]
    metrics: Metrics

    def ingest(
        self,
        temp: Path,
        peer: Peer,
        expected_sop_instance_uid: str | None = None,
        spooled: Spooled | None = None,
    ) -> IngestResult:
        """Store the Part 10 file at ``temp`` (inside the store's tmp/) or quarantine it.

        ``spooled``: the writer of ``temp``, if it hashed and fsynced it as it arrived
        (DIMSE); otherwise the file is read to hash it and fsynced here.
        """
        started = time.perf_counter()
        try:
            size = temp.stat().st_size
        except OSError:
            size = 0
        result = self._ingest(temp, peer, expected_sop_instance_uid, spooled)
        self.metrics.ingested(peer.transport, result.outcome, size, time.perf_counter() - started)
        return result

    def _ingest(
        self,
        temp: Path,
        peer: Peer,
        expected_sop_instance_uid: str | None,
        spooled: Spooled | None,
    ) -> IngestResult:
        try:
            header = read_header(temp, expected_sop_instance_uid)
        except RejectedInstance as exc:
            return self._quarantine(temp, peer, exc, expected_sop_instance_uid)
        except OSError as exc:
            return self._not_stored(temp, peer, exc, expected_sop_instance_uid)
        try:
            staged = self.stage(temp, header, peer, spooled)
            created = self.store.commit_instance(staged.temp, staged.target)
        except OSError as exc:
            return self._not_stored(temp, peer, exc, header.sop_instance_uid)
        try:
            return self._index(staged)
        except (SQLAlchemyError, OSError) as exc:
            # The file is already under its final name; ours to remove only if we put it there.
            linked = staged.target if created else None
            return self._not_stored(linked, peer, exc, header.sop_instance_uid)

    def refuse(self, temp: Path, peer: Peer, reason: str) -> IngestResult:
        """Quarantine bytes the transport refused before they were an instance to check (a
        STOW-RS part cut short, an instance of another study than the request's), as every
        refusal is: the sidecar says why and names the peer; counted as quarantined."""
        try:
            size = temp.stat().st_size
        except OSError:
            size = 0
        result = self._quarantine(temp, peer, RejectedInstance(reason), None)
        self.metrics.ingested(peer.transport, result.outcome, size, None)
        return result

    def not_received(self, peer: Peer, sop_instance_uid: str | None) -> IngestResult:
        """An instance whose data could not even be written as it arrived (disk full)."""
        self.metrics.ingested(peer.transport, "failed", 0, None)
        return IngestResult(
            "failed",
            "the node could not write the data (out of space?); send it again later",
            sop_instance_uid=sop_instance_uid,
            out_of_space=True,
        )

    def stage(
        self, temp: Path, header: InstanceHeader, peer: Peer, spooled: Spooled | None = None
    ) -> Staged:
        """Hash and fsync the checked file in tmp/ (or take the sha256 and the fsync its
        writer did as it arrived, ``spooled``): ready for its final name and its row."""
        os.chmod(temp, FILE_MODE)
        # The slow part (hash and fsync) happens before the transaction, so other writers are
        # held up only by the rename and the row.
        digest = spooled.digest() if spooled is not None else None
        if digest is not None and digest.size != temp.stat().st_size:
            logger.warning(
                "the sha256 computed on receipt does not cover the whole file; file read again",
                extra={"sop_instance_uid": header.sop_instance_uid},
            )
            digest = None
        if digest is None:
            digest = digest_file(temp)
        # Before the file gets its final name, whoever does it (durability order: fsync file,
        # link, fsync directory, commit).
        if spooled is None or not spooled.wait_synced():
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
        """The row of a file already linked under its final name (store.commit_instance).

        The file takes its final, content-derived name before the transaction, so the lock
        other writers (threads, ingest processes) wait for covers only the rows. A crash in
        between leaves a file without a row: never acknowledged, and the same bytes sent
        again land on that very name.
        """
        target, header, receipt = staged.target, staged.header, staged.receipt
        for attempt in range(1, _INDEX_ATTEMPTS + 1):
            try:
                with self.sessions.begin() as session:
                    indexed = index_instance(session, header, receipt)
                break
            except IntegrityError:
                # Another writer took this version first (PostgreSQL): the retry sees its
                # row, a duplicate if it holds the same bytes.
                if attempt == _INDEX_ATTEMPTS:
                    raise
        if indexed.duplicate:
            return IngestResult(
                "duplicate",
                sop_instance_uid=header.sop_instance_uid,
                study_instance_uid=header.study_instance_uid,
                version=indexed.version,
                path=self.store.root / indexed.path,
            )
        version = indexed.version
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
        self, temp: Path, peer: Peer, refusal: RejectedInstance, sop_instance_uid: str | None
    ) -> IngestResult:
        reason = str(refusal)
        details = {**peer.describe(), "sop_instance_uid_in_command": sop_instance_uid}
        if refusal.detail:
            details["detail"] = refusal.detail
        try:
            sidecar = self.store.quarantine(temp, reason, details)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            logger.error(
                "instance refused; it could not be kept in quarantine and was removed",
                extra={"reason": reason, "error": _error_name(exc), **peer.describe()},
            )
        else:
            logger.warning(
                "instance refused and quarantined",
                extra={"reason": reason, "quarantine": sidecar.name, **peer.describe()},
            )
        return IngestResult("quarantined", reason, sop_instance_uid=sop_instance_uid)

    def _not_stored(
        self, path: Path | None, peer: Peer, exc: Exception, sop_instance_uid: str | None
    ) -> IngestResult:
        """Writing or indexing failed: the instance is not acknowledged, so the sender keeps
        it. Out of space, nothing is kept (it would only hold the disk full); otherwise the
        bytes go to quarantine when they can. The log says which happened."""
        full = out_of_space(exc) or database_full(exc)
        kept = None
        if path is not None and path.exists():
            if not full:
                try:
                    kept = self.store.quarantine(
                        path, f"not stored: {_error_name(exc)}", peer.describe()
                    ).name
                except OSError:
                    kept = None
            if kept is None:
                path.unlink(missing_ok=True)
        logger.error(
            "instance not stored: "
            + ("kept in quarantine" if kept else "nothing kept, the sender still has it"),
            extra={
                "sop_instance_uid": sop_instance_uid,
                "error": _error_name(exc),
                "out_of_space": full,
                "quarantine": kept,
                **peer.describe(),
            },
        )
        reason = "out of space" if full else f"storage error: {_error_name(exc)}"
        return IngestResult("failed", reason, sop_instance_uid=sop_instance_uid, out_of_space=full)


def _error_name(exc: BaseException) -> str:
    """The kind of an error, never its message: a database error's message quotes the
    statement's parameters (patient names among them)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno, exc.errno)}"
    return type(exc).__name__


def read_header(path: Path, expected_sop_instance_uid: str | None = None) -> InstanceHeader:
    """Parse and check the header of a Part 10 file; raise RejectedInstance with the reason
    (OSError: the file could not be read, which says nothing about the instance)."""
    try:
        with path.open("rb") as handle:
            # pydicom first: it tells what is not DICOM at all. It reads leniently (a value
            # cut short is returned short), so every declared length is then checked.
            dataset = dcmread(handle, defer_size=_DEFER_SIZE)
            offset, syntax = dataset_start(handle)
            check_lengths(handle, offset, syntax)
    except MalformedDataset as exc:
        raise RejectedInstance(str(exc)) from None
    except InvalidDicomError as exc:
        raise RejectedInstance("not DICOM: no Part 10 header", str(exc)) from None
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many kinds on damaged input; all mean the same
        raise RejectedInstance(f"cannot parse dataset: {type(exc).__name__}", str(exc)) from None
    if len(dataset) == 0:
        raise RejectedInstance("empty dataset")
    try:
        return _header(dataset, expected_sop_instance_uid)
    except (InvalidUID, RejectedInstance) as exc:
        raise RejectedInstance(str(exc)) from None
    except Exception as exc:  # a value pydicom cannot convert, e.g. of an unknown VR
        raise RejectedInstance(
            f"cannot read the attributes: {type(exc).__name__}", str(exc)
        ) from None


# Where an image's pixels may be (PS3.3 C.7.6.3, C.7.6.24).
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "PixelDataProviderURL")


def _header(dataset: Dataset, expected_sop_instance_uid: str | None) -> InstanceHeader:
    sop_class = checked_uid(dataset.get("SOPClassUID"), "SOPClassUID")
    # Every "... Image Storage" IOD has the Image Pixel module (Pixel Data, type 1): an image
    # without pixels was cut off between two elements, which no declared length can show.
    is_image = "Rows" in dataset or "Image Storage" in UID(sop_class).name
    if is_image and not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
        raise RejectedInstance("image without Pixel Data (cut off?)")
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
        sop_class_uid=sop_class,
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
