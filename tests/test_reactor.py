"""ReactiveDUL against pynetdicom's own DUL: the same PDUs and state-machine events from the
same bytes, and the pynetdicom code it stands in for still the code it was written against."""

from __future__ import annotations

import hashlib
import inspect
import socket
import struct
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.transport import AssociationSocket, RequestHandler

from echo_node.dimse.reactor import ReactiveDUL, decode_p_data_tf
from tests.reliability.peer import US_IMAGE, abort_pdu, associate_rq, pdu, store_pdus


def _pdv(context_id: int, header: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context_id, header) + data


def _stream_of_pdus() -> list[bytes]:
    command_and_data = list(store_pdus(bytes(range(256)) * 300, US_IMAGE, "1.2.3.4", 1, 16384))
    # One PDU holding two PDVs: the last command fragment and a whole data set.
    two_values = pdu(0x04, _pdv(1, 0x03, b"\x00" * 10) + _pdv(1, 0x02, b"data" * 100))
    return [associate_rq(), *command_and_data, two_values, pdu(0x04, b""), abort_pdu()]


def _read(dul_class: type[DULServiceProvider], stream: bytes) -> tuple[list[str], list[Any]]:
    """Events and decoded PDUs of ``dul_class``'s reader over ``stream`` (then end of stream)."""
    ours, theirs = socket.socketpair()
    association = Association(AE(), "acceptor")
    if dul_class is ReactiveDUL:
        association.dul = ReactiveDUL.take_over(association.dul)
    dul = association.dul
    dul.socket = AssociationSocket(association, client_socket=ours)
    dul.event_queue.get_nowait()  # Evt5, the transport connection
    theirs.sendall(stream)
    theirs.shutdown(socket.SHUT_WR)
    events: list[str] = []
    while not events or events[-1] not in ("Evt17", "Evt19"):
        dul._read_pdu_data()
        events.append(dul.event_queue.get_nowait())
    decoded = []
    while not dul._recv_pdu.empty():
        decoded.append(_comparable(dul._recv_pdu.get_nowait()))
    ours.close()
    theirs.close()
    return events, decoded


def _comparable(decoded: Any) -> Any:
    if isinstance(decoded, P_DATA_TF):
        values = decoded.to_primitive().presentation_data_value_list
        return [(context_id, bytes(value)) for context_id, value in values]
    return decoded.encode()


def test_the_same_stream_gives_the_same_pdus_and_events() -> None:
    stream = b"".join(_stream_of_pdus())
    theirs = _read(DULServiceProvider, stream)
    ours = _read(ReactiveDUL, stream)
    assert ours == theirs
    events, decoded = ours
    assert events[0] == "Evt6" and events[-2:] == ["Evt16", "Evt17"]
    assert len(decoded) == len(_stream_of_pdus())


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"\x04\x00\x00\x00", id="header cut short"),
        pytest.param(pdu(0x04, _pdv(1, 0x02, b"x" * 100))[:50], id="body cut short"),
        pytest.param(pdu(0x09, b"abc"), id="unknown PDU type"),
        pytest.param(pdu(0x04, struct.pack(">LB", 50, 1) + b"x" * 10), id="item overruns PDU"),
        pytest.param(pdu(0x04, struct.pack(">LB", 0, 1)), id="item of length 0"),
    ],
)
def test_broken_pdus_end_the_same_way(stream: bytes) -> None:
    assert _read(ReactiveDUL, stream) == _read(DULServiceProvider, stream)


def test_an_empty_presentation_data_value_is_refused_where_pynetdicom_takes_it() -> None:
    """PS3.8 9.3.5.1: a PDV holds at least its message control header. pynetdicom decodes an
    empty one and then fails on it in DIMSEMessage.decode_msg (IndexError in its reader
    thread); the node treats the PDU as invalid (Evt19: A-ABORT)."""
    stream = pdu(0x04, struct.pack(">LB", 1, 1))
    assert _read(DULServiceProvider, stream)[0][0] == "Evt10"
    assert _read(ReactiveDUL, stream)[0] == ["Evt19"]


def test_presentation_data_values_are_views_of_the_pdu_not_copies() -> None:
    raw = bytearray(pdu(0x04, _pdv(3, 0x00, b"abcdef") + _pdv(3, 0x02, b"ghij")))
    decoded = decode_p_data_tf(raw)
    reference = P_DATA_TF()
    reference.decode(bytes(raw))
    assert _comparable(decoded) == _comparable(reference) == [(3, b"\x00abcdef"), (3, b"\x02ghij")]
    value = decoded.presentation_data_value_items[0].presentation_data_value
    assert isinstance(value, memoryview) and value.obj is raw


# The pynetdicom 3.0.4 code that reactor.py and pynetdicom_patches.py replace or rely on
# (docs/pynetdicom-patches.md, patches 8 and 9). A new pynetdicom changes a hash: read the new
# code, check (and if need be change) the node's, then record the new hash here.
PINNED = {
    DULServiceProvider._is_transport_event: "8725ed03bb8fbdef",
    DULServiceProvider._read_pdu_data: "19f2d4e38c13c835",
    DULServiceProvider.run_reactor: "e3a10eb3a0931e48",
    DULServiceProvider.stop_dul: "28a7e0be126e7b30",
    AssociationSocket.ready.fget: "3eb58e3d39dc076d",
    DIMSEServiceProvider.get_msg: "890e3e04283f5aeb",
    Association._run_reactor: "f28838c5559e462a",
    RequestHandler._create_association: "05c8d12b79863cdb",
}


def test_the_pynetdicom_code_the_node_stands_in_for_is_unchanged() -> None:
    changed = {
        function.__qualname__: digest
        for function, digest in PINNED.items()
        if hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16] != digest
    }
    assert not changed, f"pynetdicom changed {sorted(changed)}: see docs/pynetdicom-patches.md"
