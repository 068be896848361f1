"""Ingest processes share the listening socket and take connections in turn: four senders end
up two and two, and a process that does not accept cannot hold a connection back."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from echo_node.dimse.listeners import DEFER_S, Listeners
from echo_node.dimse.server import DimseServer
from echo_node.node import open_node
from echo_node.service import dimse_server
from echo_node.settings import load_settings
from tests.conftest import free_port


@pytest.fixture
def restore_pynetdicom_globals() -> Iterator[None]:
    # DimseServer.start sets these process-wide; they are put back for the other tests.
    chunked, tempdir = _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir
    yield
    _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = chunked, tempdir


def _servers(tmp_path: Path, listeners: list[Listeners], port: int) -> list[DimseServer]:
    """One DimseServer per Listeners, in this process, standing in for ingest processes."""
    settings = load_settings(
        environ={
            "ECHO_NODE_DATA_DIR": str(tmp_path / "data"),
            "ECHO_NODE_DIMSE_PORT": str(port),
            "ECHO_NODE_BIND": "127.0.0.1",
        }
    )
    node = open_node(settings)
    servers = [dimse_server(node, None, one) for one in listeners]
    for server in servers:
        server.start()
    return servers


def _associate(port: int) -> Association:
    ae = AE(ae_title="TURNSCU")
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title="ECHONODE")
    assert association.is_established
    return association


def test_four_senders_are_split_two_and_two(
    tmp_path: Path, restore_pynetdicom_globals: None
) -> None:
    port = free_port()
    shared = Listeners.open("127.0.0.1", [port], processes=2)
    # Each process has a descriptor of its own (the one multiprocessing passes it).
    second = Listeners({port: shared.sockets[port].dup()}, shared.loads, 1)
    servers = _servers(tmp_path, [shared.for_process(0), second], port)
    associations = []
    try:
        for _ in range(4):
            associations.append(_associate(port))
            time.sleep(0.05)
        assert list(shared.loads) == [2, 2]
        for association in associations:
            assert association.send_c_echo().Status == 0x0000
    finally:
        for association in associations:
            association.release()
        deadline = time.monotonic() + 10
        while list(shared.loads) != [0, 0] and time.monotonic() < deadline:
            time.sleep(0.05)
        for server in servers:
            server.stop()
    assert list(shared.loads) == [0, 0], "every closed connection leaves its process's count"


def test_a_process_that_does_not_accept_holds_nothing_back(
    tmp_path: Path, restore_pynetdicom_globals: None
) -> None:
    port = free_port()
    shared = Listeners.open("127.0.0.1", [port], processes=2)
    # Process 0 never accepts (stuck, or gone); process 1 is the busier by count.
    shared.loads[1] = 5
    servers = _servers(tmp_path, [shared.for_process(1)], port)
    try:
        started = time.monotonic()
        association = _associate(port)
        waited = time.monotonic() - started
        association.release()
    finally:
        for server in servers:
            server.stop()
    assert DEFER_S * 0.5 < waited < 2.0
