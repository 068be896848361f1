"""The places where the node changes pynetdicom's (3.0) own behaviour, each a subclass
or an event handler installed by server.py, each written up as a patch to offer upstream in
docs/pynetdicom-patches.md. Nothing in pynetdicom is modified in place.

1. ``SpoolingDIMSE``: with ``STORE_RECV_CHUNKED_DATASET`` pynetdicom writes a received data
   set to a temp file from its reader thread (``DIMSEMessage.decode_msg``). A failed write
   (disk full) raises there, the state machine kills the reader and the sender gets an
   A-ABORT. Here the file fails softly: the rest of the data set is read and dropped, the file
   is removed at once, and the C-STORE handler (which finds no file) answers 0xA700.
2. ``SpoolingDIMSE.discard_partial`` + ``on_connection_closed``: an association that ends in
   the middle of a data set (abort, closed connection) leaves its partial temp file behind
   until the next start. The file is removed when the connection closes.
3. ``on_connection_closed``: an acceptor waits for the A-ASSOCIATE-RQ for up to the ACSE
   timeout even after the connection has closed, its thread and (in pynetdicom's own count)
   its association slot held. The wait is ended when the connection closes.
4. ``SpoolingDIMSE._receive``: a message's command set, and any data set but a C-STORE's, is
   gathered in memory from as many P-DATA-TF PDUs as the peer sends. Over 16 MiB the
   association is aborted.
5. ``SpoolingDIMSE.get_msg``: the association's thread sleeps 1 ms per turn polling for a
   message; here it waits for one, or for anything else it must look at (patch 9).
6. ``AcceptorHandler``: each association's reader is a ``reactor.ReactiveDUL``, which waits
   for data instead of polling and reads whole PDUs without copying them (patch 8).

``SpoolFile`` also hashes the data set as it is written, starts its writeback early
(storage.hashing, storage.writeback) and, once the last fragment is written, fsyncs it from
the reader thread while the C-STORE handler reads its header (``SpoolingDIMSE._receive``):
the node's own work, no change to pynetdicom's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynetdicom import events
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import RequestHandler

from echo_node.dimse.reactor import ReactiveDUL, WakingQueue
from storage.files import FileDigest
from storage.hashing import Hasher, StreamDigest
from storage.writeback import start_writeback

if TYPE_CHECKING:
    from pynetdicom.association import Association

logger = logging.getLogger(__name__)


# The longest the association's reactor waits for a message before it looks again at what
# nothing wakes it for (another thread pausing it to send a request on the association).
_REACTOR_WAIT_S = 0.1
# A received data set's writeback is started every this many bytes (SpoolFile.flush).
_WRITEBACK_BYTES = 1024 * 1024
# What one message may hold in memory (its command set, or a data set other than C-STORE's,
# e.g. a storage commitment request listing its instances).
_MEMORY_LIMIT = 16 * 1024 * 1024


def _held_in_memory(message: Any) -> int:
    # Both are BytesIO written to the end, so the position is the size (getbuffer() would
    # pin the buffer and make the next write fail).
    held = message.encoded_command_set.tell()
    data = message.data_set
    if isinstance(data, io.BytesIO):
        held += data.tell()
    return int(held)


class SpoolFile:
    """Stands in for the NamedTemporaryFile pynetdicom writes a received data set into: the
    first failed write removes the file and turns every later write into a no-op; the bytes
    are hashed as they are written (storage.hashing), so the file is never read back for its
    sha256."""

    def __init__(
        self, target: Any, address: str, sop_instance_uid: str, digest: StreamDigest | None
    ) -> None:
        self._target = target  # the NamedTemporaryFile (None: it could not even be made)
        self.name = str(getattr(target, "name", ""))
        self._address = address
        self._sop_instance_uid = sop_instance_uid
        self.failure: OSError | None = None
        self._digest = digest if target is not None else None
        self._written = 0  # bytes in the file
        self._written_back = 0  # bytes whose writeback has been started
        # The fsync the reader makes once the last fragment is written (expect_sync, sync).
        self._sync_expected = False
        self._synced = threading.Event()
        self._sync_error: OSError | None = None
        if target is not None:
            # pynetdicom has already written the preamble and the file meta: those few
            # hundred bytes are read back, everything after them is hashed as it is written.
            try:
                target.flush()
                self._written = target.tell()
                if self._digest is not None:
                    self._digest.update(os.pread(target.fileno(), self._written, 0))
            except (OSError, ValueError) as exc:
                self.fail(exc)

    @property
    def file(self) -> SpoolFile:  # decode_msg calls ``.file.flush()``
        return self

    def write(self, data: bytes) -> int:
        if self._target is not None:
            try:
                written = int(self._target.write(data))
            except (OSError, ValueError) as exc:  # ValueError: closed under us by discard()
                self.fail(exc)
            else:
                self._written += written
                if self._digest is not None:
                    self._digest.update(data)
                return written
        return len(data)

    def flush(self) -> None:
        """decode_msg flushes after each fragment; every megabyte, its writeback is started
        (storage.writeback: the fsync before the file is linked then has less to wait for)."""
        if self._target is not None:
            try:
                self._target.flush()
                pending = self._written - self._written_back
                if pending >= _WRITEBACK_BYTES:
                    start_writeback(self._target.fileno(), self._written_back, pending)
                    self._written_back = self._written
            except (OSError, ValueError) as exc:
                self.fail(exc)

    def expect_sync(self) -> None:
        """The last fragment is about to be written: the reader fsyncs the file next, while
        the C-STORE handler (started as the message completes) reads its header."""
        self._sync_expected = True

    def sync(self) -> None:
        """The reader's fsync of the complete file (after expect_sync, whatever happened)."""
        try:
            if self._target is not None and self.failure is None:
                self._target.flush()
                os.fsync(self._target.fileno())
        except (OSError, ValueError) as exc:  # the handler's stage() raises it
            self._sync_error = exc if isinstance(exc, OSError) else OSError(str(exc))
        finally:
            self._synced.set()

    def wait_synced(self) -> bool:
        """Wait for the reader's fsync: True once it is done, False if none is coming (the
        caller then fsyncs); raises the fsync's error."""
        if not self._sync_expected:
            return False
        self._synced.wait()
        if self._sync_error is not None:
            raise self._sync_error
        return self.failure is None

    def digest(self) -> FileDigest | None:
        """sha256 and size of the complete file (all of it flushed); None if it failed or
        was not hashed."""
        self.flush()
        if self.failure is not None or self._digest is None:
            return None
        return self._digest.finish()

    def close(self) -> None:
        target, self._target = self._target, None
        if self._digest is not None:
            self._digest.discard()  # nothing once finish() has run; else its thread ends
        if target is not None:
            # An error here is the buffered tail not written: the file is incomplete anyway.
            with contextlib.suppress(OSError):
                target.close()

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc if isinstance(exc, OSError) else OSError(str(exc))
            logger.error(
                "received data set could not be written; the rest of it is dropped and the "
                "sender gets 0xA700",
                extra={
                    "peer_address": self._address,
                    "sop_instance_uid": self._sop_instance_uid,
                    "error": self.failure.strerror or type(exc).__name__,
                },
            )
        self.discard()

    def discard(self) -> None:
        self.close()
        if self.name:
            with contextlib.suppress(OSError):
                os.unlink(self.name)


class SpoolingDIMSE(DIMSEServiceProvider):  # type: ignore[misc]
    """pynetdicom's DIMSE provider, with the received data set's file wrapped in SpoolFile,
    and the association's reactor waiting for a message instead of sleeping (get_msg)."""

    def __init__(self, assoc: Association, hasher: Hasher | None = None) -> None:
        super().__init__(assoc)
        self._hasher = hasher
        self._woken = threading.Event()
        self.msg_queue = WakingQueue(self._woken.set)

    def wake(self) -> None:
        """Something for the association's thread to look at: a message, a primitive from
        the peer (release, abort), the end of the DUL thread or of the association."""
        self._woken.set()

    def get_msg(self, block: bool = False) -> Any:
        """pynetdicom's; without ``block`` (only the association's reactor calls it so, after
        sleeping 1 ms on every turn) it first waits up to 0.1 s for a message or a wake-up,
        so an idle association's thread no longer wakes a thousand times a second and a
        message is served as soon as it is complete."""
        if not block and self.msg_queue.empty() and self._nothing_else_pending():
            self._woken.wait(_REACTOR_WAIT_S)
        self._woken.clear()
        return super().get_msg(block)

    def _nothing_else_pending(self) -> bool:
        # What the reactor looks at after get_msg: a release or abort from the peer, the DUL
        # thread's end, the association killed.
        association, dul = self.assoc, self.assoc.dul
        return bool(dul.to_user_queue.empty() and dul.is_alive() and not association._kill)

    def receive_primitive(self, primitive: P_DATA) -> None:
        values = primitive.presentation_data_value_list
        if len(values) == 1:
            self._receive(primitive)
            return
        # One presentation data value at a time, so the file made for a command can be
        # wrapped before the data that follows it in the same PDU is written.
        for value in values:
            single = P_DATA()
            single.presentation_data_value_list = [value]
            self._receive(single)

    def _receive(self, primitive: P_DATA) -> None:
        # The last fragment of a data set being written to a file: once it is written (and the
        # message handed to the association's thread), its fsync is made here.
        spool = getattr(self.message, "_data_set_file", None)
        value = primitive.presentation_data_value_list[0][1]
        # PS3.8 E.2 message control header: bit 0 command, bit 1 last fragment.
        final_data = len(value) > 0 and value[0] & 0x03 == 0x02
        last = spool if isinstance(spool, SpoolFile) and final_data else None
        if last is not None:
            last.expect_sync()
        try:
            super().receive_primitive(primitive)
        except OSError as exc:  # making the file, or writing its meta, failed
            message = self.message
            if message is None:
                raise
            self._wrap(message).fail(exc)
            return
        finally:
            if last is not None:
                last.sync()
        message = self.message
        if message is None:
            return
        if message._data_set_file is not None:
            self._wrap(message)
        elif _held_in_memory(message) > _MEMORY_LIMIT:
            # Only C-STORE data sets go to a file; anything else (and every command set)
            # is held in memory, so a peer could grow it for ever. PS3.8 9.3.1 (AA-8):
            # abort, as pynetdicom does for a message it cannot decode.
            logger.warning(
                "DIMSE message over the size held in memory; association aborted",
                extra={"peer_address": str(self.assoc.requestor.address), "limit": _MEMORY_LIMIT},
            )
            self.message = None
            self.dul.event_queue.put("Evt19")

    def _wrap(self, message: Any) -> SpoolFile:
        spool = message._data_set_file
        if isinstance(spool, SpoolFile):
            return spool
        command = message.command_set
        uid = str(command.get("AffectedSOPInstanceUID", "")) if command is not None else ""
        address = str(self.assoc.requestor.address)
        digest = self._hasher.stream() if self._hasher is not None else None
        spool = SpoolFile(spool, address, uid, digest)
        message._data_set_file = spool
        if message._data_set_path is None:
            # No file could be made: the handler is given a path that does not exist.
            message._data_set_path = Path(os.devnull + ".missing")
        return spool

    def discard_partial(self) -> None:
        """Remove the file of a data set still being received (the association has ended)."""
        message = self.message
        spool = getattr(message, "_data_set_file", None) if message is not None else None
        if isinstance(spool, SpoolFile):
            spool.discard()


class AcceptorHandler(RequestHandler):  # type: ignore[misc]
    """pynetdicom's request handler, giving each association a SpoolingDIMSE and a
    ReactiveDUL (reactor.py)."""

    def _create_association(self) -> Association:
        association = super()._create_association()
        # Nothing has used the providers yet: the association's thread starts after this.
        association.dimse = SpoolingDIMSE(association, getattr(self.server, "hasher", None))
        association.dul = ReactiveDUL.take_over(association.dul)
        return association


def on_connection_closed(event: events.Event) -> None:
    """EVT_CONN_CLOSE (from the reader thread, as the connection closes)."""
    association = event.assoc
    dimse = association.dimse
    if isinstance(dimse, SpoolingDIMSE):
        dimse.discard_partial()
    if association.is_acceptor and association.requestor.primitive is None:
        # The acceptor's thread waits in dul.receive_pdu() for the A-ASSOCIATE-RQ; None is
        # what that wait returns on its timeout, and the thread then ends.
        association.dul.to_user_queue.put(None)
