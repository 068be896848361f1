"""Retrieval from a DIMSE Query/Retrieve SCP (PS3.4 Annex C, Study Root): count with C-FIND,
then C-GET or C-MOVE at STUDY level.

C-GET: the source sends each instance as a C-STORE on the node's own association (SCP/SCU
role selection, PS3.7 D.3.3.4); each goes through the Ingestor, like a received instance, and
is answered only once it is durable (or with the refusal's status). Instances arrive as files
in the store's tmp/ (pynetdicom's STORE_RECV_CHUNKED_DATASET, as for the SCP in
echo_node/dimse/server.py), so a large clip is never held in memory.

C-MOVE: the source opens its own association to the node's AE title (the Move Destination)
and stores there, so the node's SCP (a running `echo-node serve`) receives and acknowledges
each instance; the C-MOVE responses count what it took.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import uid
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from echo_node.dimse.contexts import TRANSFER_SYNTAXES
from echo_node.dimse.store import store_status
from echo_node.dimse.tls import client_context
from echo_node.ingest import Ingestor, Peer
from echo_node.retrieve.outcome import RetrieveError, Tally
from echo_node.settings import Settings, Source

logger = logging.getLogger(__name__)

# Storage SOP classes proposed for C-GET besides those the source lists in SOP Classes in
# Study (0008,0062): what an echo study holds (clips, stills, the node's own results).
ECHO_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.6.1",  # US Image
    "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.9.6.1",  # General ECG Waveform
)
# One context is C-GET's own; an association proposes at most 128 (PS3.8 9.3.2.2).
MAX_STORAGE_CONTEXTS = 127
# Compressed syntaxes proposed each in a context of its own, most likely in echo first: a
# source sends an instance as stored only if a context accepted exactly its syntax (an
# acceptor picks one syntax per context, and would transcode the rest to it).
_ALONE = (
    uid.JPEGBaseline8Bit,
    uid.MPEG4HP41,
    uid.JPEGLosslessSV1,
    uid.RLELossless,
    uid.JPEGLSLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HEVCMP51,
    uid.MPEG4HP422D,
    uid.JPEGExtended12Bit,
    uid.JPEGLSNearLossless,
    uid.MPEG2MPML,
)
_UNCOMPRESSED: list[str] = [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian]
# PS3.4 C.4.2.1.5 / C.4.3.1.4: Move Destination unknown.
_MOVE_DESTINATION_UNKNOWN = 0xA801


@dataclass(frozen=True)
class StudyAtSource:
    """What C-FIND says of the study: its instances (None when the source does not say) and
    the SOP classes it lists."""

    instances: int | None
    sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubOperations:
    """The last C-GET / C-MOVE response: its status and sub-operation counts."""

    status: int | None  # None: no final response (association ended)
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.warning + self.remaining

    def problem(self, method: str) -> str:
        if self.status is None:
            return f"the source ended the {method} before its final response"
        if self.status in (0x0000, 0xB000):
            return ""
        return f"{method} status 0x{self.status:04X}"


def study_at_source(source: Source, settings: Settings, study_uid: str) -> StudyAtSource:
    """C-FIND at STUDY level for the study's instance count and SOP classes. A source that
    does not offer Study Root C-FIND is retrieved without the count (None)."""
    ae = _ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, source, settings)
    try:
        if not _accepted(assoc, StudyRootQueryRetrieveInformationModelFind):
            return StudyAtSource(None)
        query = _identifier(study_uid)
        query.NumberOfStudyRelatedInstances = ""
        query.SOPClassesInStudy = ""
        matches: list[Dataset] = []
        final: int | None = None
        for status, identifier in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind
        ):
            if "Status" not in status:
                raise RetrieveError(f"{source.name}: no C-FIND response (timeout or abort)")
            final = int(status.Status)
            if final in (0xFF00, 0xFF01) and identifier is not None:
                matches.append(identifier)
        if final not in (0x0000, None):
            raise RetrieveError(f"{source.name}: C-FIND status 0x{final:04X}")
    finally:
        _release(assoc)
    if not matches:
        return StudyAtSource(0)
    match = matches[0]
    count = str(match.get("NumberOfStudyRelatedInstances", "") or "").strip()
    classes = match.get("SOPClassesInStudy") or []
    classes = [classes] if isinstance(classes, str) else list(classes)
    return StudyAtSource(
        int(count) if count.isdigit() else None, tuple(str(uid) for uid in classes if uid)
    )


def c_get(
    source: Source,
    settings: Settings,
    ingestor: Ingestor,
    study_uid: str,
    sop_classes: Iterable[str],
    tally: Tally,
) -> SubOperations:
    """C-GET the study; each instance the source sends is ingested and counted in ``tally``."""
    _spool_into(ingestor)
    ae = _ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    # The classes the source lists in the study, else what an echo study holds.
    listed = tuple(dict.fromkeys(sop_classes))
    classes = list(listed or ECHO_SOP_CLASSES)[:MAX_STORAGE_CONTEXTS]
    roles = []
    for sop_class in classes:
        for syntaxes in storage_contexts(MAX_STORAGE_CONTEXTS // len(classes)):
            ae.add_requested_context(sop_class, syntaxes)
        roles.append(build_role(sop_class, scp_role=True))
    peer = Peer(ae_title=source.ae_title, address=source.host, transport="retrieve")
    handlers = [(evt.EVT_C_STORE, _store, [ingestor, peer, tally])]
    assoc = _associate(ae, source, settings, roles, handlers)
    try:
        if not _accepted(assoc, StudyRootQueryRetrieveInformationModelGet):
            raise RetrieveError(f"{source.name} does not offer Study Root C-GET")
        return _sub_operations(
            assoc.send_c_get(_identifier(study_uid), StudyRootQueryRetrieveInformationModelGet)
        )
    finally:
        _release(assoc)


def c_move(source: Source, settings: Settings, study_uid: str) -> SubOperations:
    """C-MOVE the study to the node's own AE title; the node's SCP stores what comes."""
    ae = _ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = _associate(ae, source, settings)
    try:
        if not _accepted(assoc, StudyRootQueryRetrieveInformationModelMove):
            raise RetrieveError(f"{source.name} does not offer Study Root C-MOVE")
        result = _sub_operations(
            assoc.send_c_move(
                _identifier(study_uid),
                settings.ae_title,
                StudyRootQueryRetrieveInformationModelMove,
            )
        )
    finally:
        _release(assoc)
    if result.status == _MOVE_DESTINATION_UNKNOWN:
        raise RetrieveError(
            f"{source.name} does not know the move destination {settings.ae_title}: add the "
            f"node to its DICOM peers (AE title {settings.ae_title}, this host, port "
            f"{settings.dimse_port})"
        )
    return result


def storage_contexts(budget: int) -> list[list[str]]:
    """The transfer syntax lists of one SOP class's storage contexts, at most ``budget`` (and
    at least 2) of them: little endian; then the likeliest compressed syntaxes, one each; then
    every other syntax the node takes, together."""
    alone: list[str] = list(_ALONE[: max(0, budget - 2)])
    rest = [ts for ts in TRANSFER_SYNTAXES if ts not in alone and ts not in _UNCOMPRESSED]
    return [list(_UNCOMPRESSED), *[[ts] for ts in alone], rest]


def _store(event: Event, ingestor: Ingestor, peer: Peer, tally: Tally) -> Dataset:
    """EVT_C_STORE of a C-GET sub-operation: answered once the instance is durable."""
    request = event.request
    assert isinstance(request, C_STORE)
    sop_instance_uid = str(request.AffectedSOPInstanceUID)
    path = Path(event.dataset_path)
    if not path.is_file():
        result = ingestor.not_received(peer, sop_instance_uid)
    else:
        if path.parent.resolve() != ingestor.store.tmp.resolve():
            # Spooled elsewhere (another node's tmp/ in this process): the final link must be
            # made within the data directory's filesystem.
            path = Path(shutil.move(path, ingestor.store.new_temp_path(".dcm")))
        result = ingestor.ingest(path, peer, expected_sop_instance_uid=sop_instance_uid)
    tally.add(result)
    return store_status(result)


def _spool_into(ingestor: Ingestor) -> None:
    # C-STOREs arrive as files in tmp/, as at the SCP (server.py): process-wide switches, the
    # same values the node's own SCP sets.
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(ingestor.store.tmp)


def _identifier(study_uid: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    return identifier


def _sub_operations(responses: Iterable[tuple[Dataset, Dataset | None]]) -> SubOperations:
    last: SubOperations = SubOperations(None)
    for status, _ in responses:
        if "Status" not in status:
            break  # no response within the timeout, or the association ended
        code = int(status.Status)
        last = SubOperations(
            code,
            completed=_count(status, "NumberOfCompletedSuboperations"),
            failed=_count(status, "NumberOfFailedSuboperations"),
            warning=_count(status, "NumberOfWarningSuboperations"),
            remaining=_count(status, "NumberOfRemainingSuboperations"),
        )
        if code not in (0xFF00, 0xFF01):
            return last
    return SubOperations(None, last.completed, last.failed, last.warning, last.remaining)


def _count(status: Dataset, keyword: str) -> int:
    value = status.get(keyword)
    return int(value) if value not in (None, "") else 0


def _ae(settings: Settings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    timeout = settings.network_timeout_s
    ae.connection_timeout = ae.acse_timeout = timeout
    ae.dimse_timeout = ae.network_timeout = timeout
    ae.maximum_pdu_size = settings.max_pdu_size
    return ae


def _associate(
    ae: AE,
    source: Source,
    settings: Settings,
    roles: list[Any] | None = None,
    handlers: list[Any] | None = None,
) -> Association:
    assert source.host and source.port and source.ae_title  # by Source
    try:
        tls_args = (client_context(source), source.host) if source.tls else None
    except (OSError, ssl.SSLError) as exc:
        raise RetrieveError(f"{source.name}: TLS certificate files unusable ({exc})") from None
    connected = threading.Event()  # pynetdicom reports a refused connection as an abort
    assoc = ae.associate(
        source.host,
        source.port,
        ae_title=source.ae_title,
        ext_neg=roles or None,
        tls_args=tls_args,
        evt_handlers=[*(handlers or []), (evt.EVT_CONN_OPEN, lambda _event: connected.set())],
    )
    if assoc.is_established:
        return assoc
    where = f"{source.ae_title}@{source.host}:{source.port}"
    if not connected.is_set():
        why = "could not be reached" + (" over TLS" if source.tls else "")
    elif assoc.is_rejected:
        why = "rejected the association"
    else:
        why = "aborted the association"
    raise RetrieveError(f"source {source.name} ({where}) {why}")


def _accepted(assoc: Association, abstract_syntax: str) -> bool:
    return any(cx.abstract_syntax == abstract_syntax for cx in assoc.accepted_contexts)


def _release(assoc: Association) -> None:
    if assoc.is_established:
        assoc.release()
