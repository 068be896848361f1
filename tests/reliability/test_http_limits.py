"""Item 8 of issue 16: HTTP connections have header, body and idle deadlines and a cap below
the descriptor limit, so a flood of idle HTTP sockets leaves C-ECHO and C-STORE working and
HTTP itself recovers once the flood's connections time out."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import echoscu
from tests.reliability import corpus, probes
from tests.reliability.conftest import HostileNode, start_node
from tests.reliability.peer import closed_by_peer

pytestmark = pytest.mark.peer  # the node runs as a process of its own

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
DESCRIPTOR_LIMIT = 1024  # systemd's default soft limit
FLOOD = 1100


@pytest.fixture(scope="module")
def limited_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileNode]:
    node, token = start_node(
        tmp_path_factory.mktemp("http") / "data",
        http=True,
        descriptor_limit=DESCRIPTOR_LIMIT,
        http_header_timeout_s=str(HEADER_TIMEOUT_S),
        http_body_timeout_s=str(BODY_TIMEOUT_S),
    )
    yield HostileNode(node, token)
    node.stop()


def _studies(node: HostileNode) -> int:
    url = f"http://127.0.0.1:{node.http_port}/dicom-web/studies"
    headers = {"Authorization": f"Bearer {node.token}"}
    try:
        return httpx.get(url, headers=headers, timeout=5).status_code
    except httpx.HTTPError:
        return -1


def test_an_idle_http_flood_leaves_dimse_working_and_times_out(limited_node: HostileNode) -> None:
    flood = []
    try:
        for _ in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", limited_node.http_port)))
        time.sleep(0.5)
        assert echoscu(limited_node.port, calling_ae=probes.LISTED_AE)
        instance = corpus.image()
        status = probes.store_raw(limited_node.port, instance.dataset, instance.sop_instance_uid)
        assert status == 0x0000
        # Beyond the cap the node answered 503 and closed; the rest it closes at the header
        # deadline, and then HTTP serves again.
        started = time.monotonic()
        assert all(closed_by_peer(sock, HEADER_TIMEOUT_S + 3) for sock in flood)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3
        assert _studies(limited_node) == 200
    finally:
        for sock in flood:
            sock.close()
    assert "HTTP connection refused: http_max_connections open" in limited_node.process.log()


def test_headers_sent_one_byte_at_a_time_are_cut_at_the_deadline(
    limited_node: HostileNode,
) -> None:
    request = b"GET /dicom-web/studies HTTP/1.1\r\nHost: node\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", limited_node.http_port)) as sock:
        started = time.monotonic()
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if closed_by_peer(sock, 0.2):
                break
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 1
        assert closed_by_peer(sock, 0.5)


def test_a_stow_body_that_never_comes_is_cut_and_leaves_nothing(
    limited_node: HostileNode,
) -> None:
    head = (
        "POST /dicom-web/studies HTTP/1.1\r\nHost: node\r\n"
        f"Authorization: Bearer {limited_node.token}\r\n"
        'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
        f"Content-Length: {2 * 1024**3}\r\n\r\n"
        "--b\r\nContent-Type: application/dicom\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", limited_node.http_port)) as sock:
        sock.sendall(head + corpus.image().part10()[:300])
        started = time.monotonic()
        assert closed_by_peer(sock, BODY_TIMEOUT_S + 2)
        assert time.monotonic() - started > BODY_TIMEOUT_S - 0.5
    tmp: Path = limited_node.data_dir / "tmp"
    deadline = time.monotonic() + 2
    while list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp.iterdir()) == []
