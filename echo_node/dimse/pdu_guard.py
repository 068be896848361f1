"""What a peer may send before the node reads it: PDU lengths and deadlines, checked on the
accepted socket itself, below pynetdicom.

pynetdicom's reader (``DULServiceProvider._read_pdu_data``) reads a PDU's 6-byte header and
then as many bytes as the header declares, with no limit and no deadline: a stranger declaring
an A-ASSOCIATE-RQ of 4 GB makes it buffer whatever is sent, and one byte every few seconds
keeps it (and the association slot) waiting for ever. The socket classes here follow the PDU
framing of the byte stream as it is read and

- refuse a PDU whose declared length is over the limit for its type as soon as its header
  arrives (the A-ASSOCIATE-RQ over ``association_request``, P-DATA-TF over the node's
  max_pdu_size, which PS3.8 Annex D.1 makes the most a peer may send), and any PDU type PS3.8
  does not define: an A-ABORT (PS3.8 Table 9-26, source service-provider) goes out, the
  connection closes, and the reader sees the end of the stream before it allocates anything;
- give every PDU a deadline: the first (the A-ASSOCIATE-RQ) must be complete within
  ``artim_s`` of the TCP connect (the ARTIM timer of PS3.8 §9.1.5, which pynetdicom checks only
  between reads), every later one within ``pdu_s`` of its first byte; a read past the
  deadline sees the end of the stream.

Working on the stream rather than inside pynetdicom's reader keeps the check independent of
how that reader reads (``recv`` or ``recv_into``, any chunk size); see
docs/pynetdicom-patches.md.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pynetdicom.pdu import A_ABORT_RQ

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from echo_node.dimse.admission import Connection
    from echo_node.dimse.listeners import Ticket

logger = logging.getLogger(__name__)

_ASSOCIATE_RQ = 0x01
_P_DATA_TF = 0x04
_PDU_TYPES = range(0x01, 0x08)  # PS3.8 Table 9-11
_HEADER = 6
# PS3.8 Table 9-26, A-ABORT source 2 (service-provider) reasons.
UNRECOGNIZED_PDU = 0x01
INVALID_PARAMETER_VALUE = 0x06


@dataclass(frozen=True)
class PduLimits:
    association_request: int  # bytes: the most an A-ASSOCIATE-RQ (or any non-data PDU) may declare
    max_pdu: int  # bytes: the most a P-DATA-TF may declare (the node's max_pdu_size)
    artim_s: float  # the first PDU is complete within this many seconds of the connect
    pdu_s: float  # a later PDU is complete within this many seconds of its first byte


# An A-ASSOCIATE-RQ proposing all 128 presentation contexts, each with 16 transfer syntaxes of
# 64 characters, is about 150 KB; real ones are a few KB.
ASSOCIATION_REQUEST_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Refusal:
    reason: str
    abort_reason: int  # the A-ABORT's reason/diag. (PS3.8 Table 9-26)


class PduGuard:
    """The PDU framing of one connection's incoming bytes: where the current PDU started, how
    much of it is still to come, and whether the peer broke a limit."""

    def __init__(self, limits: PduLimits, connected_at: float) -> None:
        self.limits = limits
        # When the PDU being received must be complete (monotonic seconds); None between
        # PDUs, where a read may wait an idle association's own timeout. The first PDU (the
        # association request) has the ARTIM deadline, counted from the connect.
        self.until: float | None = connected_at + limits.artim_s
        self._header = bytearray()
        self._body_left = 0
        self._complete = 0  # PDUs received in full

    def deadline(self, now: float) -> float:
        """When the bytes being waited for must have arrived."""
        return self.until if self.until is not None else now + self.limits.pdu_s

    def feed(self, data: ReadableBuffer, now: float) -> Refusal | None:
        """Account for ``data`` just read; a Refusal if it breaks a limit."""
        size = len(data)  # type: ignore[arg-type]
        if size < self._body_left:  # the common case: more of a body, no header in it
            self._body_left -= size
            return None
        view = memoryview(data).cast("B")
        offset = 0
        while offset < size:
            if self.until is None:  # a new PDU starts
                self.until = now + self.limits.pdu_s
            if self._body_left:
                taken = min(self._body_left, size - offset)
                self._body_left -= taken
                offset += taken
            else:
                taken = min(_HEADER - len(self._header), size - offset)
                self._header += view[offset : offset + taken]
                offset += taken
                if len(self._header) < _HEADER:
                    break
                pdu_type, _, length = struct.unpack(">BBL", self._header)
                self._header.clear()
                refusal = self._check(pdu_type, length)
                if refusal is not None:
                    return refusal
                self._body_left = length
            if not self._body_left and not self._header:
                self._complete += 1
                self.until = None
        return None

    def _check(self, pdu_type: int, length: int) -> Refusal | None:
        if pdu_type not in _PDU_TYPES:
            return Refusal(f"PDU of unknown type 0x{pdu_type:02X}", UNRECOGNIZED_PDU)
        limit = self.limits.max_pdu if pdu_type == _P_DATA_TF else self.limits.association_request
        if length > limit:
            kind = "A-ASSOCIATE-RQ" if pdu_type == _ASSOCIATE_RQ else f"PDU of type {pdu_type}"
            return Refusal(
                f"{kind} declares {length} bytes, over the {limit} accepted",
                INVALID_PARAMETER_VALUE,
            )
        return None


def _abort_pdu(reason: int) -> bytes:
    pdu = A_ABORT_RQ()
    pdu.source = 0x02  # DICOM UL service-provider
    pdu.reason_diagnostic = reason
    return bytes(pdu.encode())


class _Guarded:
    """Mixed into socket classes: reads go through the connection's PduGuard.

    ``guard`` and ``connection`` are set after the socket is made (an SSLSocket is made by its
    context, not by us); a socket without a guard behaves as its base class. Reads use the
    socket's timeout, changed only when the deadline needs it (not on every read), so a read
    never waits more than a second past its deadline.
    """

    guard: PduGuard | None = None
    connection: Connection | None = None
    ticket: Ticket | None = None  # the connection in its process's count (listeners.py)
    address: str = "?"
    _refused = False

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        guard = self.guard
        if guard is None:
            return super().recv(bufsize, flags)  # type: ignore[misc,no-any-return]
        # Kept lean: pynetdicom reads a PDU body 4 KB at a time, so this runs often.
        while (now := self._ready(guard)) is not None:
            try:
                data: bytes = super().recv(bufsize, flags)  # type: ignore[misc]
            except TimeoutError:
                continue  # _ready decides whether the deadline has passed
            refusal = guard.feed(data, now)
            if refusal is None:
                return data
            self._refuse(refusal)
        return b""

    def recv_into(self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0) -> int:
        nbytes = nbytes or memoryview(buffer).nbytes  # socket.socket takes no None
        guard = self.guard
        if guard is None:
            return super().recv_into(buffer, nbytes, flags)  # type: ignore[misc,no-any-return]
        while (now := self._ready(guard)) is not None:
            try:
                count: int = super().recv_into(buffer, nbytes, flags)  # type: ignore[misc]
            except TimeoutError:
                continue
            refusal = guard.feed(memoryview(buffer)[:count], now)
            if refusal is None:
                return count
            self._refuse(refusal)
        return 0

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        # A peer that stops reading what the node sends does not hold a thread for ever.
        if self.guard is not None and self.gettimeout() != self.guard.limits.pdu_s:  # type: ignore[attr-defined]
            self.settimeout(self.guard.limits.pdu_s)  # type: ignore[attr-defined]
        return super().send(data, flags)  # type: ignore[misc,no-any-return]

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        if self.connection is not None:
            self.connection.release()
        if self.ticket is not None:
            self.ticket.close()

    def _ready(self, guard: PduGuard) -> float | None:
        """Ready the socket's timeout for the next read and return the time; None (the
        connection shut) once the deadline has passed or the peer was refused."""
        if self._refused:
            return None
        now = time.monotonic()
        remaining = guard.deadline(now) - now
        if remaining <= 0:
            self._refused = True
            logger.warning(
                "DIMSE connection closed: the peer did not send in time",
                extra={"peer_address": self.address},
            )
            self._shut()
            return None
        current = self.gettimeout()  # type: ignore[attr-defined]
        if current is None or current > remaining + 1.0 or current < remaining / 2:
            self.settimeout(remaining)  # type: ignore[attr-defined]
        return now

    def _refuse(self, refusal: Refusal) -> None:
        self._refused = True
        logger.warning(
            "DIMSE connection refused: PDU over the limits",
            extra={"peer_address": self.address, "reason": refusal.reason},
        )
        with contextlib.suppress(OSError):
            self.settimeout(1.0)  # type: ignore[attr-defined]
            super().sendall(_abort_pdu(refusal.abort_reason))  # type: ignore[misc]
        self._shut()

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            self.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]


class GuardedSocket(_Guarded, socket.socket):
    """An accepted TCP connection whose reads are checked (see the module docstring)."""

    @classmethod
    def adopt(cls, accepted: socket.socket, guard: PduGuard, address: str) -> GuardedSocket:
        guarded = cls(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        guarded.guard = guard
        guarded.address = address
        return guarded


class GuardedSSLSocket(_Guarded, ssl.SSLSocket):
    """The same for DICOM TLS; an SSLContext makes these once its ``sslsocket_class`` is set."""

    def take_over(self, plain: GuardedSocket) -> None:
        """Carry the guard and connection over from the TCP socket the handshake wrapped."""
        self.guard, self.connection, self.address = plain.guard, plain.connection, plain.address
        self.ticket = plain.ticket
        plain.connection = plain.ticket = None
