"""The node as a hostile network sees it: `echo-node serve` in its own process with short
deadlines, so every probe is bounded in time, and a listed scanner (US_ROOM1 on 127.0.0.1)
beside strangers on 127.0.0.2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.auth import add_token
from tests.conftest import NodeProcess, free_port
from tests.reliability.probes import LISTED_AE
from tests.test_web_support import wait_for_port

ARTIM_S = 2.0
NETWORK_TIMEOUT_S = 3.0


def start_node(
    data_dir: Path, http: bool = False, descriptor_limit: int | None = None, **settings: str
) -> tuple[NodeProcess, str]:
    """A node (and, with ``http``, a write token); ``settings`` override the test defaults."""
    values = {
        "allowed_peers": f"{LISTED_AE}@127.0.0.1",
        "artim_timeout_s": str(ARTIM_S),
        "network_timeout_s": str(NETWORK_TIMEOUT_S),
        **settings,
    }
    if http:
        values.update(http_enabled="true", http_port=str(free_port()))
    data_dir.mkdir(parents=True, exist_ok=True)
    node = NodeProcess(data_dir, free_port(), values, descriptor_limit=descriptor_limit)
    token = ""
    if http:  # in this process: a CLI run would cost a second interpreter start
        prepared = open_node(load_settings(environ=node.env))
        _, token = add_token(prepared.sessions, "write", "reliability tests")
        prepared.engine.dispose()
    node.start()
    if http:
        wait_for_port(http_port(node))
    return node, token


def http_port(node: NodeProcess) -> int:
    return int(node.env["ECHO_NODE_HTTP_PORT"])


# The shared node's limits, small so the probes reach them quickly.
PENDING_PER_ADDRESS = 4
ASSOCIATIONS_PER_ADDRESS = 3
# Another stranger, for limits that are per address.
OTHER_STRANGER = "127.0.0.3"


@dataclass(frozen=True)
class HostileNode:
    process: NodeProcess
    token: str

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def http_port(self) -> int:
        return http_port(self.process)

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir


@pytest.fixture(scope="session")
def hostile_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileNode]:
    """One node for the probes that need no special machine set-up, each of which leaves it
    as it found it. allowed_peers lists the scanner by address and AE title, and lets the
    AE title STRANGER in from anywhere, so strangers can also hold associations."""
    node, token = start_node(
        tmp_path_factory.mktemp("hostile") / "data",
        http=True,
        allowed_peers=f"{LISTED_AE}@127.0.0.1,STRANGER",
        max_pending_per_address=str(PENDING_PER_ADDRESS),
        max_associations_per_address=str(ASSOCIATIONS_PER_ADDRESS),
        log_level="DEBUG",
    )
    yield HostileNode(node, token)
    node.stop()
