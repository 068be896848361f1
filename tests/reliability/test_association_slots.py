"""Item 1 of issue 16: connections that never complete an association request hold no slot,
closed ones are forgotten at once, the request has a short deadline (ARTIM), addresses have
limits, and a listed scanner gets in while strangers flood the port."""

from __future__ import annotations

import time

from tests.conftest import echoscu
from tests.reliability import probes
from tests.reliability.conftest import (
    ARTIM_S,
    ASSOCIATIONS_PER_ADDRESS,
    OTHER_STRANGER,
    PENDING_PER_ADDRESS,
    HostileNode,
)
from tests.reliability.peer import (
    ASSOCIATE_AC,
    ASSOCIATE_RJ,
    RELEASE_RQ_PDU,
    STRANGER,
    associate,
    associate_rq,
    closed_by_peer,
    connect,
    read_pdu,
)


def test_strangers_hold_no_slot_and_are_cut_at_the_artim_deadline(
    hostile_node: HostileNode,
) -> None:
    port = hostile_node.port
    held = probes.stranger_connections(port)  # 20: closed, idle, one byte, half a request
    try:
        # Every one of the 16 slots is the listed scanner's, with the strangers still there.
        assert probes.associations_available(port) == 16
        assert echoscu(port, calling_ae=probes.LISTED_AE)
        # What the node took on it closes once the association request's deadline, counted
        # from the connect, has passed; the rest it closed at once.
        started = time.monotonic()
        assert all(closed_by_peer(sock, ARTIM_S + 2) for sock in held)
        assert time.monotonic() - started < ARTIM_S + 2
    finally:
        for sock in held:
            sock.close()


def test_a_slow_sender_of_the_request_is_cut_at_the_deadline(hostile_node: HostileNode) -> None:
    rq = associate_rq(probes.LISTED_AE)
    with connect(hostile_node.port) as sock:
        started = time.monotonic()
        for sent in range(len(rq)):  # one byte every 0.25 s: it would take minutes
            try:
                sock.sendall(rq[sent : sent + 1])
            except OSError:
                break
            time.sleep(0.25)
            if time.monotonic() - started > ARTIM_S + 3:
                break
        assert closed_by_peer(sock, 1.0)
        assert time.monotonic() - started < ARTIM_S + 1.5


def test_closed_connections_are_forgotten_at_once(hostile_node: HostileNode) -> None:
    for _ in range(20):
        connect(hostile_node.port, STRANGER).close()
    # Were those 20 still counted, the stranger's next connection would be closed at accept.
    held = [
        associate(hostile_node.port, "STRANGER", STRANGER) for _ in range(ASSOCIATIONS_PER_ADDRESS)
    ]
    for sock in held:
        sock.close()


def test_pending_connections_are_limited_per_address_not_for_a_listed_network(
    hostile_node: HostileNode,
) -> None:
    port = hostile_node.port
    silent = [connect(port, STRANGER) for _ in range(PENDING_PER_ADDRESS)]
    refused = connect(port, STRANGER)
    listed = [connect(port) for _ in range(3 * PENDING_PER_ADDRESS)]
    try:
        assert closed_by_peer(refused, 1.0)  # one more silent one from that address
        assert not any(closed_by_peer(sock, 0.1) for sock in (*silent, *listed))
        # Another address has its own allowance.
        other = associate(port, "STRANGER", OTHER_STRANGER)
        other.close()
    finally:
        for sock in (*silent, *listed, refused):
            sock.close()


def test_association_slots_per_address_freed_by_release(hostile_node: HostileNode) -> None:
    port = hostile_node.port
    strangers = [associate(port, "STRANGER", STRANGER) for _ in range(ASSOCIATIONS_PER_ADDRESS)]
    try:
        with connect(port, STRANGER) as one_more:
            one_more.sendall(associate_rq("STRANGER"))
            answer = read_pdu(one_more)
            assert answer.type == ASSOCIATE_RJ
            # Rejected-transient, service-provider (presentation), local-limit-exceeded.
            assert answer.body[1:4] == bytes([2, 3, 2])
        other = [associate(port, "STRANGER", OTHER_STRANGER) for _ in range(3)]
        for sock in other:
            sock.close()
        released = strangers.pop()
        released.sendall(RELEASE_RQ_PDU)
        read_pdu(released)  # A-RELEASE-RP: the slot is free from here on
        released.close()
        with connect(port, STRANGER) as again:
            again.sendall(associate_rq("STRANGER"))
            assert read_pdu(again).type == ASSOCIATE_AC
    finally:
        for sock in strangers:
            sock.close()
