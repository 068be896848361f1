"""Shared pieces of the DICOMweb tests: the node's HTTP service on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from echo_node.node import Node, open_node
from echo_node.settings import load_settings
from echo_node.web.auth import add_token
from echo_node.web.server import run_http
from tests.conftest import REPO, free_port


@dataclass
class WebNode:
    node: Node
    port: int
    write_token: str
    read_token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.write_token}"}


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def settings_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        "ECHO_NODE_DATA_DIR": str(data_dir),
        "ECHO_NODE_BIND": "127.0.0.1",
        "ECHO_NODE_HTTP_PORT": str(port),
        "ECHO_NODE_DIMSE_PORT": str(free_port()),
        "ECHO_NODE_LOG_LEVEL": "WARNING",
    }
    env.update({f"ECHO_NODE_{k.upper()}": v for k, v in extra.items()})
    return env


@contextmanager
def serve_web(data_dir: Path, **extra: str) -> Iterator[WebNode]:
    """The HTTP service in a thread of the test process, with a write and a read token;
    ``extra`` settings as for settings_env."""
    port = free_port()
    node = open_node(load_settings(environ=settings_env(data_dir, port, **extra)))
    _, write_token = add_token(node.sessions, "write", "test writer")
    _, read_token = add_token(node.sessions, "read", "test reader")
    stop = threading.Event()
    thread = threading.Thread(target=run_http, args=(node, stop), daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield WebNode(node, port, write_token, read_token)
    finally:
        stop.set()
        thread.join(30)
        node.engine.dispose()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebNode]:
    """The HTTP service in a thread of the test process, with a write and a read token."""
    with serve_web(tmp_path / "data") as served:
        yield served


@contextmanager
def web_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m echo_node.web` as a process of its own (so its memory can be measured),
    listening on ECHO_NODE_HTTP_PORT of ``env``; stopped with SIGTERM afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "echo_node.web"],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(int(env["ECHO_NODE_HTTP_PORT"]))
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


@contextmanager
def rss_growth(pid: int, interval: float = 0.02) -> Iterator[list[int]]:
    """Samples the resident memory of ``pid`` while the block runs; afterwards the yielded
    list holds one number, the peak growth over the start in kB."""
    idle = peak = rss_kb(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb(pid))
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    growth: list[int] = []
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth.append(peak - idle)
