"""Item 2 of issue 16: a PDU's declared length is checked against what the node accepts
before anything of it is read, so memory stays bounded per connection; and a PDU that has
started must be complete within network_timeout_s."""

from __future__ import annotations

import struct
import time

from tests.reliability import corpus, probes
from tests.reliability.conftest import ARTIM_S, NETWORK_TIMEOUT_S, HostileNode
from tests.reliability.peer import (
    ASSOCIATE_RQ,
    P_DATA,
    STRANGER,
    associate,
    c_store_status,
    closed_by_peer,
    connect,
    store_contexts,
    store_pdus,
)

MAX_PDU = 131072  # the node's max_pdu_size (default)
# Refused before reading: what a refused PDU may cost the node, at most.
RSS_SLACK_KB = 30 * 1024


def test_a_4_gb_association_request_is_refused_before_it_is_read(
    hostile_node: HostileNode,
) -> None:
    pid = hostile_node.process.process.pid  # type: ignore[union-attr]
    idle = probes.rss_kb(pid)
    peak = probes.huge_rq_peak_rss_kb(hostile_node.port, pid, mb_per_socket=100)
    assert peak - idle < RSS_SLACK_KB
    with connect(hostile_node.port, STRANGER) as sock:
        sock.sendall(struct.pack(">BBL", ASSOCIATE_RQ, 0, 0xFFFFFFF0) + bytes(1000))
        # A-ABORT, source service-provider, invalid PDU parameter value; then the close.
        assert probes.abort_answer(sock) == (2, 6)
        assert closed_by_peer(sock, 1.0)
    assert "A-ASSOCIATE-RQ declares 4294967280 bytes" in hostile_node.process.log()


def test_p_data_over_the_max_pdu_is_refused_before_it_is_read(hostile_node: HostileNode) -> None:
    pid = hostile_node.process.process.pid  # type: ignore[union-attr]
    idle = probes.rss_kb(pid)
    with associate(hostile_node.port, probes.LISTED_AE, contexts=store_contexts()) as sock:
        sock.sendall(struct.pack(">BBL", P_DATA, 0, 600 * 1024 * 1024))
        try:
            for _ in range(64):
                sock.sendall(bytes(1 << 20))
        except OSError:
            pass  # the node has closed the connection
        assert probes.abort_answer(sock) in ((2, 6), None)  # None: reset before it was read
        assert closed_by_peer(sock, 1.0)
    assert probes.rss_kb(pid) - idle < RSS_SLACK_KB


def test_a_p_data_of_exactly_the_max_pdu_is_taken(hostile_node: HostileNode) -> None:
    instance = corpus.image(rows=512, columns=512)
    pdus = list(
        store_pdus(instance.dataset, corpus.US_IMAGE, instance.sop_instance_uid, 1, MAX_PDU)
    )
    assert max(len(data) - 6 for data in pdus) == MAX_PDU
    with associate(hostile_node.port, probes.LISTED_AE, contexts=store_contexts()) as sock:
        for data in pdus:
            sock.sendall(data)
        assert c_store_status(sock) == 0x0000


def test_an_unknown_pdu_type_is_aborted(hostile_node: HostileNode) -> None:
    with connect(hostile_node.port, STRANGER) as sock:
        sock.sendall(struct.pack(">BBL", 0x09, 0, 4) + bytes(4))
        assert probes.abort_answer(sock) == (2, 1)  # unrecognised PDU
        assert closed_by_peer(sock, 1.0)


def test_a_pdu_trickling_in_is_cut_at_the_network_timeout(hostile_node: HostileNode) -> None:
    with associate(hostile_node.port, probes.LISTED_AE, contexts=store_contexts()) as sock:
        started = time.monotonic()
        sock.sendall(struct.pack(">BBL", P_DATA, 0, 1000))
        for _ in range(40):  # one byte every 0.2 s: 200 s for the whole PDU
            try:
                sock.sendall(b"\x00")
            except OSError:
                break
            if closed_by_peer(sock, 0.2):
                break
        assert time.monotonic() - started < NETWORK_TIMEOUT_S + 1.5
        assert closed_by_peer(sock, 0.5)


def test_an_endless_command_set_is_aborted(hostile_node: HostileNode) -> None:
    pid = hostile_node.process.process.pid  # type: ignore[union-attr]
    idle = probes.rss_kb(pid)
    # Command fragments (control header 0x01: command, not the last), each a full PDU.
    fragment = struct.pack(">LBB", MAX_PDU - 4, 1, 0x01) + bytes(MAX_PDU - 6)
    data = struct.pack(">BBL", P_DATA, 0, MAX_PDU) + fragment
    with associate(hostile_node.port, probes.LISTED_AE, contexts=store_contexts()) as sock:
        try:
            for _ in range(48 * 1024 * 1024 // len(data)):
                sock.sendall(data)
        except OSError:
            pass
        # An A-ABORT at the 16 MiB a message may hold in memory; what follows is read and
        # dropped until the connection closes (PS3.8 Sta13, bounded by the ARTIM timer).
        assert probes.abort_answer(sock) is not None
        assert closed_by_peer(sock, ARTIM_S + 2)
    assert probes.rss_kb(pid) - idle < RSS_SLACK_KB + 16 * 1024
