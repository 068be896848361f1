"""C-STORE: hand the received file to the ingest path and answer only once it is durable.

pynetdicom runs with STORE_RECV_CHUNKED_DATASET, so each dataset arrives as a Part 10 file in
the store's tmp/ directory (see server.py) and is never decoded in memory here.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType

from pydicom.dataset import Dataset
from pynetdicom import events
from pynetdicom.dimse_primitives import C_STORE

from echo_node.dimse.pynetdicom_patches import SpoolFile
from echo_node.ingest import Ingestor, IngestResult, Peer

logger = logging.getLogger(__name__)

# PS3.4 Annex B.2.3 / PS3.7 Annex C storage statuses.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
_ERROR_COMMENT_MAX = 64  # LO


class InFlight:
    """Counts C-STORE handlers running, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


def handle_store(event: events.Event, ingestor: Ingestor, in_flight: InFlight) -> Dataset:
    with in_flight:
        requestor = event.assoc.requestor
        peer = Peer(
            ae_title=str(requestor.ae_title).strip(),
            address=str(requestor.address),
            transport="dimse",
        )
        request = event.request
        assert isinstance(request, C_STORE)
        sop_instance_uid = str(request.AffectedSOPInstanceUID)
        path = Path(event.dataset_path)
        if not path.is_file():
            # The data set could not be written as it arrived (disk full); the reader has
            # logged why and dropped the rest (pynetdicom_patches.SpoolingDIMSE).
            return store_status(ingestor.not_received(peer, sop_instance_uid))
        # Hashed and fsynced as it arrived (pynetdicom_patches.SpoolFile), while its header
        # is read here; without that, the ingest path reads and fsyncs the file itself.
        spool = getattr(request, "_dataset_file", None)
        result = ingestor.ingest(
            path,
            peer,
            expected_sop_instance_uid=sop_instance_uid,
            spooled=spool if isinstance(spool, SpoolFile) else None,
        )
        return store_status(result)


def store_status(result: IngestResult) -> Dataset:
    status = Dataset()
    if result.acknowledged:
        status.Status = SUCCESS
        return status
    status.Status = CANNOT_UNDERSTAND if result.outcome == "quarantined" else OUT_OF_RESOURCES
    # LO: default character repertoire, no backslash.
    comment = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in result.reason)
    status.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return status
