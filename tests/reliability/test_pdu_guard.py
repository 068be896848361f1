"""echo_node.dimse.pdu_guard on its own: PDU framing across any chunking, refusal at the header,
and deadlines, through both recv and recv_into (what a reworked reader would call)."""

from __future__ import annotations

import random
import socket
import struct
import time

from echo_node.dimse.pdu_guard import GuardedSocket, PduGuard, PduLimits
from tests.reliability.peer import ABORT, P_DATA, associate_rq, pdu, read_pdu

LIMITS = PduLimits(association_request=4096, max_pdu=16384, artim_s=0.5, pdu_s=0.5)


def test_framing_holds_across_any_chunking() -> None:
    stream = associate_rq() + pdu(P_DATA, bytes(16384)) + pdu(5, bytes(4)) + pdu(P_DATA, b"")
    rng = random.Random(19)
    for _ in range(50):
        guard = PduGuard(LIMITS, time.monotonic())
        offset = 0
        while offset < len(stream):
            step = rng.randint(1, 3000)
            assert guard.feed(stream[offset : offset + step], time.monotonic()) is None
            offset += step
        assert guard._complete == 4


def test_an_oversized_pdu_is_refused_at_its_header_even_split() -> None:
    guard = PduGuard(LIMITS, time.monotonic())
    header = struct.pack(">BBL", P_DATA, 0, 16385)
    assert guard.feed(associate_rq(), 0.0) is None
    assert guard.feed(header[:3], 0.0) is None
    refusal = guard.feed(header[3:], 0.0)
    assert refusal is not None and refusal.abort_reason == 6
    assert "16385" in refusal.reason


def _pair() -> tuple[GuardedSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    return GuardedSocket.adopt(ours, PduGuard(LIMITS, time.monotonic()), "test"), theirs


def test_recv_into_refuses_and_the_peer_gets_an_a_abort() -> None:
    guarded, peer = _pair()
    with guarded, peer:
        peer.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0) + bytes(100))
        buffer = bytearray(4096)
        assert guarded.recv_into(buffer, 6) == 0
        answer = read_pdu(peer)
        assert answer.type == ABORT and answer.abort_reason == (2, 6)
        assert guarded.recv(10) == b""  # and stays closed


def test_recv_into_passes_a_good_pdu_through() -> None:
    guarded, peer = _pair()
    with guarded, peer:
        request = associate_rq()
        peer.sendall(request)
        buffer = bytearray(len(request))
        view = memoryview(buffer)
        got = 0
        while got < len(request):
            got += guarded.recv_into(view[got:], len(request) - got)
        assert bytes(buffer) == request


def test_the_first_pdu_has_the_artim_deadline() -> None:
    guarded, peer = _pair()
    with guarded, peer:
        peer.sendall(associate_rq()[:10])
        started = time.monotonic()
        assert guarded.recv(10) != b""
        assert guarded.recv(1000) == b""  # the rest never comes
        assert LIMITS.artim_s - 0.1 < time.monotonic() - started < LIMITS.artim_s + 1.2
