"""A raw-socket DICOM peer, in the style of pynetdicom's own tests: PDUs built byte by byte, so
it can send what no well-behaved library would (a truncated A-ASSOCIATE-RQ, a PDU declaring
4 GB, one byte at a time, an abort in the middle of a data set).

Well-formed parts (the C-STORE command, its P-DATA fragmentation) come from pynetdicom's own
encoders, so only the misbehaviour is hand-made.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
# A second loopback address: the kernel routes all of 127/8 to lo, so a test can be "another
# host" that allowed_peers does not list.
STRANGER = "127.0.0.2"

# PDU types (PS3.8 Table 9-11).
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA, RELEASE_RQ, RELEASE_RP, ABORT = range(1, 8)


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def associate_rq(
    calling: str = "RAWPEER",
    called: str = "ECHONODE",
    contexts: Sequence[tuple[str, Sequence[str]]] = ((VERIFICATION, (ImplicitVRLittleEndian,)),),
    max_pdu: int = 16384,
) -> bytes:
    """A complete, valid A-ASSOCIATE-RQ PDU (PS3.8 §9.3.2)."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
    body += bytes(32) + _item(0x10, APPLICATION_CONTEXT.encode())
    for index, (abstract, syntaxes) in enumerate(contexts):
        sub = _item(0x30, abstract.encode())
        sub += b"".join(_item(0x40, syntax.encode()) for syntax in syntaxes)
        body += _item(0x20, struct.pack(">BBBB", 2 * index + 1, 0, 0, 0) + sub)
    user = _item(0x51, struct.pack(">L", max_pdu)) + _item(0x52, b"1.2.826.0.1.3680043.9.9999")
    return pdu(ASSOCIATE_RQ, body + _item(0x50, user))


def abort_pdu(source: int = 0, reason: int = 0) -> bytes:
    return pdu(ABORT, struct.pack(">BBBB", 0, 0, source, reason))


RELEASE_RQ_PDU = pdu(RELEASE_RQ, bytes(4))


@dataclass(frozen=True)
class Pdu:
    type: int
    body: bytes

    @property
    def abort_reason(self) -> tuple[int, int]:
        """(source, reason/diagnostic) of an A-ABORT."""
        assert self.type == ABORT
        return self.body[2], self.body[3]


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def read_pdu(sock: socket.socket) -> Pdu:
    pdu_type, _, length = struct.unpack(">BBL", _exactly(sock, 6))
    return Pdu(pdu_type, _exactly(sock, length))


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True if the other side closes (or resets) the connection within ``within`` seconds;
    anything it sends first (an A-ABORT) is read and dropped."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:  # reset
            return True
    return False


def associate(port: int, calling: str, source: str = "127.0.0.1", **rq: object) -> socket.socket:
    """An established association (raises if the node does not accept it)."""
    sock = connect(port, source)
    sock.sendall(associate_rq(calling, **rq))  # type: ignore[arg-type]
    answer = read_pdu(sock)
    if answer.type != ASSOCIATE_AC:
        sock.close()
        raise ConnectionRefusedError(
            f"association answered with PDU type {answer.type} ({answer.body.hex()})"
        )
    return sock


def store_pdus(
    dataset: bytes,
    sop_class: str,
    sop_instance: str,
    context_id: int = 1,
    max_pdu: int = 16384,
) -> Iterator[bytes]:
    """The P-DATA-TF PDUs of one C-STORE-RQ (command and data set), as pynetdicom sends them."""
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    request.Priority = 2
    request.DataSet = io.BytesIO(dataset)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    for primitive in message.encode_msg(context_id, max_pdu):
        tf = P_DATA_TF()
        tf.from_primitive(primitive)
        yield tf.encode()


def store_contexts(sop_class: str = US_IMAGE) -> list[tuple[str, Sequence[str]]]:
    return [(sop_class, (ExplicitVRLittleEndian,))]


def c_store_status(sock: socket.socket) -> int:
    """The Status of the C-STORE-RSP that comes back (its command set, Implicit VR LE)."""
    command = b""
    while True:
        answer = read_pdu(sock)
        if answer.type != P_DATA:
            raise ConnectionError(f"PDU type {answer.type} instead of the C-STORE-RSP")
        offset = 0
        while offset < len(answer.body):
            (length,) = struct.unpack(">L", answer.body[offset : offset + 4])
            header = answer.body[offset + 5]
            command += answer.body[offset + 6 : offset + 4 + length]
            offset += 4 + length
            if header & 0x03 == 0x03:
                return _status(command)


def _status(command: bytes) -> int:
    offset = 0
    while offset < len(command):
        group, element, length = struct.unpack("<HHL", command[offset : offset + 8])
        if (group, element) == (0x0000, 0x0900):
            return int(struct.unpack("<H", command[offset + 8 : offset + 10])[0])
        offset += 8 + length
    raise ValueError("no Status in the C-STORE-RSP")
