"""pynetdicom's DICOM Upper Layer reactor, waking on data or queued work instead of polling,
and reading each PDU whole into one buffer (docs/pynetdicom-patches.md, patch 8).

pynetdicom 3.0's ``DULServiceProvider.run_reactor`` loops on a 1 ms ``time.sleep`` when it has
nothing to do, checking the socket with ``select(timeout=0)`` on every turn, and its reader
(``_read_pdu_data``) takes a PDU's body in 4 KiB ``recv`` calls appended to a bytearray, which
``_decode_pdu`` copies into bytes, which the P-DATA-TF decoder slices into more copies. For a
3 MB clip in 128 KiB PDUs that is ~750 reads, five copies of every byte, and a wait of up to a
millisecond every time the peer or the node's own reply is not there yet; the polling threads
also take the GIL a thousand times a second from the thread storing the previous instance.

``ReactiveDUL`` keeps pynetdicom's loop and state machine and changes three things:

- where the loop would find nothing to do, it waits in ``select`` on the socket and on a wake-up
  socket written whenever another thread queues work for it (its event and provider queues)
  or stops it, bounded by the ARTIM timer; the loop's own sleep is set to zero;
- a PDU is read with ``recv_into`` into one bytearray of its declared length (a new one per
  PDU: pieces of it are still being hashed and written when the next arrives), and a P-DATA-TF
  is decoded into memoryviews of that buffer, not copies (``decode_p_data_tf``; other PDU types
  go through pynetdicom's own decoder);
- what it hands to the association's thread (``to_user_queue``) wakes that thread
  (``SpoolingDIMSE.get_msg`` in pynetdicom_patches.py), which waits for it instead of
  sleeping too.

Everything else, including the events it triggers (EVT_DATA_RECV only when a handler is bound,
as it costs a copy of the PDU) and the state machine's events for closed connections and
unreadable PDUs (Evt17, Evt19), is pynetdicom's.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_items import PresentationDataValueItem

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.transport import AssociationSocket

logger = logging.getLogger(__name__)

_HEADER = 6
_P_DATA_TF = 0x04
_PDU_TYPES = range(0x01, 0x08)  # PS3.8 Table 9-11
_ITEM_LENGTH = struct.Struct(">L")
# The longest the reactor waits without a wake-up: a safety net, not a poll.
_MAX_WAIT_S = 1.0


class WakingQueue(queue.Queue[Any]):
    """A queue that calls ``on_put`` after each item is put, so its reader need not poll."""

    def __init__(self, on_put: Callable[[], None]) -> None:
        super().__init__()
        self._on_put = on_put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._on_put()


def decode_p_data_tf(pdu: bytearray) -> P_DATA_TF:
    """A whole P-DATA-TF PDU (header included) as pynetdicom's P_DATA_TF, each presentation
    data value a memoryview of ``pdu`` rather than a copy. ValueError if an item does not fit
    (PS3.8 9.3.5: each PDV item is its length, a context ID, then at least the message control
    header; pynetdicom accepts an empty value and fails later on it)."""
    view = memoryview(pdu)
    decoded = P_DATA_TF()
    items = decoded.presentation_data_value_items
    offset, end = _HEADER, len(pdu)
    while offset < end:
        if end - offset < 5:
            raise ValueError("P-DATA-TF item header cut short")
        (length,) = _ITEM_LENGTH.unpack_from(pdu, offset)
        if length < 2 or offset + 4 + length > end:
            raise ValueError(f"P-DATA-TF item of length {length} does not fit the PDU")
        item = PresentationDataValueItem()
        item.presentation_context_id = pdu[offset + 4]
        # Typed bytes in pynetdicom; every reader of it indexes, slices or writes it.
        item.presentation_data_value = view[offset + 5 : offset + 4 + length]  # type: ignore[assignment]
        items.append(item)
        offset += 4 + length
    return decoded


class ReactiveDUL(DULServiceProvider):  # type: ignore[misc]
    """pynetdicom's DUL service provider, waiting instead of polling (module docstring)."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        # The loop sleeps this long after a turn with nothing to do; it waits in
        # _is_transport_event instead.
        self._run_loop_delay = 0
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._waker: tuple[socket.socket, socket.socket] | None = socket.socketpair()
        for end in self._waker:
            end.setblocking(False)
        self.event_queue = WakingQueue(self._wake)
        self.to_provider_queue = WakingQueue(self._wake)
        self.to_user_queue = WakingQueue(self._wake_user)

    @classmethod
    def take_over(cls, previous: DULServiceProvider) -> ReactiveDUL:
        """Replace the provider pynetdicom made for an association not yet started: same
        socket, timers and pending events."""
        if previous.is_alive() or previous.ident is not None:
            raise RuntimeError("the DUL provider has already been started")
        dul = cls(previous.assoc)
        dul.socket = previous.socket
        dul.artim_timer = previous.artim_timer
        dul._idle_timer = previous._idle_timer
        while True:
            try:
                dul.event_queue.put(previous.event_queue.get_nowait())
            except queue.Empty:
                break
        return dul

    # -- waiting ----------------------------------------------------------------------------

    def _is_transport_event(self) -> bool:
        """pynetdicom's check for incoming data (``AssociationSocket.ready``, then a PDU read,
        or in Sta13 the socket closed once nothing more comes), with one difference: when the
        loop has nothing else to do it first waits for data or work, and the wait's answer
        stands in for ``ready``'s own select. (Not in Sta13, where pynetdicom closes the
        connection as soon as no data is ready.)"""
        sta13 = self.state_machine.current_state == "Sta13"
        idle = (
            not sta13
            and self.event_queue.empty()
            and self.to_provider_queue.empty()
            and not self._kill_thread
        )
        wrapper = self.socket
        ready = self._ready(wrapper, self._wait_s() if idle else 0.0)
        if ready:
            self._read_pdu_data()
            return True
        if sta13 and wrapper is not None:
            wrapper.close()  # no more incoming data: close, which queues Evt17
            return True
        return False

    def _ready(self, wrapper: AssociationSocket | None, timeout: float) -> bool:
        """Whether the connection has data (or has ended) within ``timeout``, waking early
        when work is queued for this thread (AssociationSocket.ready, with a timeout)."""
        connection = wrapper.socket if wrapper is not None else None
        connected = connection is not None and wrapper is not None and wrapper._is_connected
        if connected and isinstance(connection, ssl.SSLSocket) and connection.pending():
            return True  # bytes already decrypted: select would not see them
        waker = self._waker
        watched: list[Any] = [connection] if connected else []
        if waker is not None and timeout > 0:
            watched.append(waker[0])
        if not watched:
            return False
        try:
            readable, _, _ = select.select(watched, [], [], timeout)
        except (OSError, ValueError):
            if connected:
                self.event_queue.put("Evt17")  # as AssociationSocket.ready does
            return False
        if waker is not None and waker[0] in readable:
            with self._wake_lock:
                self._wake_pending = False
                with contextlib.suppress(OSError):
                    while waker[0].recv(64):
                        pass
        return connected and connection in readable

    def _wait_s(self) -> float:
        """Until the ARTIM timer expires (the loop checks it on every turn), at most 1 s."""
        artim = self.artim_timer
        if artim.timeout is None:
            return _MAX_WAIT_S
        return float(min(_MAX_WAIT_S, max(artim.remaining, 0.001)))

    def _wake(self) -> None:
        """Called after work is queued for this thread; a no-op from the thread itself, which
        looks at its queues before it waits."""
        if threading.get_ident() == self.ident:
            return
        with self._wake_lock:
            if self._wake_pending or self._waker is None:
                return
            self._wake_pending = True
            with contextlib.suppress(OSError):
                self._waker[1].send(b"\0")

    def _wake_user(self) -> None:
        """Wake the association's thread (SpoolingDIMSE.wake), if it waits for us."""
        wake = getattr(self.assoc.dimse, "wake", None)
        if wake is not None:
            wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        """pynetdicom's, which then waits for the thread by sleeping ``_run_loop_delay`` (now
        zero) in a loop: here it is woken and joined."""
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._wake()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
        return True

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            with self._wake_lock:
                waker, self._waker = self._waker, None
            if waker is not None:
                for end in waker:
                    end.close()
            self._wake_user()  # the association's thread looks at whether the DUL is alive

    # -- reading ----------------------------------------------------------------------------

    def _read_pdu_data(self) -> None:
        """pynetdicom's reader, taking the PDU whole with recv_into (module docstring)."""
        wrapper = self.socket
        connection = wrapper.socket if wrapper is not None else None
        if connection is None:
            self.event_queue.put("Evt17")
            return
        header = bytearray(_HEADER)
        if _read_into(connection, memoryview(header)) < _HEADER:
            self.event_queue.put("Evt17")  # Evt17: transport connection closed
            return
        pdu_type, _, length = struct.unpack(">BBL", header)
        if pdu_type not in _PDU_TYPES:
            logger.error("unknown PDU type received", extra={"pdu_type": f"0x{pdu_type:02X}"})
            self.event_queue.put("Evt19")  # Evt19: unrecognised or invalid PDU
            return
        pdu = bytearray(_HEADER + length)
        pdu[:_HEADER] = header
        received = _read_into(connection, memoryview(pdu)[_HEADER:])
        if received < length:
            logger.error(
                "connection closed before the entire PDU was received",
                extra={"received": _HEADER + received, "expected": _HEADER + length},
            )
            self.event_queue.put("Evt17")
            return
        try:
            decoded, event = self._decode(pdu)
        except Exception as exc:  # pynetdicom's own decoders raise many kinds
            logger.error("unable to decode the received PDU", extra={"error": type(exc).__name__})
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(decoded)

    def _decode(self, pdu: bytearray) -> tuple[Any, str]:
        if pdu[0] != _P_DATA_TF:
            return self._decode_pdu(pdu)  # type: ignore[no-any-return]
        # pynetdicom triggers EVT_DATA_RECV before decoding, with a bytes copy of the PDU.
        if self.assoc.get_handlers(evt.EVT_DATA_RECV):
            evt.trigger(self.assoc, evt.EVT_DATA_RECV, {"data": bytes(pdu)})
        decoded = decode_p_data_tf(pdu)
        evt.trigger(self.assoc, evt.EVT_PDU_RECV, {"pdu": decoded})
        return decoded, "Evt10"


def _read_into(connection: socket.socket, view: memoryview) -> int:
    """Fill ``view`` from the connection; fewer bytes than asked means the stream ended (or
    the PDU guard closed it)."""
    received, size = 0, view.nbytes
    try:
        while received < size:
            count = connection.recv_into(view[received:])
            if not count:
                break
            received += count
    except OSError:  # TimeoutError included
        pass
    return received
