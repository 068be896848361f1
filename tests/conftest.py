"""Shared fixtures: real peers (dcmtk, the node itself as a process) on free loopback ports."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file

REPO = Path(__file__).resolve().parent.parent
ECHO_NODE = Path(sys.executable).parent / "echo-node"
# dcmtk stalls ~50 ms per message without it (MEASURED.md).
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


# `make test-unit` runs `pytest -m "not peer and not model and not slow"`, for the inner loop:
# no real peer (dcmtk, dicom3tools, Orthanc, PostgreSQL, poppler, a browser, or the node and the
# echo-node command as processes of their own), no neural network, nothing slow by design. A test
# that uses one of the shared fixtures below, which start a peer, is marked `peer` here; any
# other says so itself (@pytest.mark.peer, @pytest.mark.model). In a run without peers, a test
# that starts one anyway fails and names the program, so the marks stay true.
PEER_FIXTURES = frozenset(
    {"node_factory", "node", "orthanc_factory", "postgres_server", "postgres_url", "hostile_node"}
)


def _starts_a_peer(item: pytest.Item) -> bool:
    definitions = getattr(item, "_fixtureinfo", None)
    for name in PEER_FIXTURES & set(getattr(item, "fixturenames", ())):
        found = definitions.name2fixturedefs.get(name, ()) if definitions else ()
        # Only the shared fixtures: a module may have its own `node`, opened in this process.
        if any(d.func.__module__ != item.module.__name__ for d in found):
            return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.id


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _starts_a_peer(item):
            item.add_marker(pytest.mark.peer)


@pytest.fixture(scope="session")
def every_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every model's checkpoint (tests/all_models.py), written once for the session: 2.8 GB
    that each test using it would otherwise write again."""
    from tests.all_models import write_all_models

    folder = tmp_path_factory.mktemp("every_model")
    write_all_models(folder)
    return folder


# The free-space watermark's defaults (10 % and 5 GB free, config/default.toml) are for the
# disk a node owns. Tests keep their data on whatever disk the machine has, which on a shared
# runner is often more than 90 % full: the nodes the tests start (in this process and as
# processes) keep a small floor instead, so the check still runs on every store. The
# watermark's own tests set theirs (tests/test_disk_watermark.py, tests/reliability/).
TEST_DISK_FLOOR = {"disk_min_free_percent": 0, "disk_min_free_gb": 0.1}
_production_defaults: Callable[[], dict[str, Any]] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _production_defaults
    if "not peer" in (config.getoption("markexpr", "") or ""):
        sys.addaudithook(_no_peer_started)
    from echo_node import settings

    defaults = _production_defaults = settings.default_values
    settings.default_values = lambda: {**defaults(), **TEST_DISK_FLOOR}
    # And for the nodes started as processes with this environment (`python -m echo_node.web`,
    # the echo-node command); node_env, which drops ECHO_NODE_* variables, sets it itself.
    for key, value in TEST_DISK_FLOOR.items():
        os.environ.setdefault(f"ECHO_NODE_{key.upper()}", str(value))


@contextmanager
def production_defaults() -> Iterator[None]:
    """Settings as config/default.toml has them, the disk floor above lifted: for what states
    the defaults to a reader (the conformance statement)."""
    from echo_node import settings

    assert _production_defaults is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "default_values", _production_defaults)
        yield


# The programs that are peers (or start one): dcmtk, dicom3tools, Orthanc, PostgreSQL, poppler,
# a browser (playwright's driver runs on node), and the node itself.
PEER_PROGRAMS = frozenset(
    {"storescu", "storescp", "echoscu", "findscu", "movescu", "getscu", "dcmsend", "dcmrecv"}
    | {"dsrdump", "dsr2html", "dcmdump", "dciodvfy", "dcentvfy", "Orthanc"}
    | {"initdb", "pg_ctl", "postgres", "psql", "runuser", "pdftoppm", "chromium", "node"}
    | {"echo-node"}
)


def _no_peer_started(event: str, args: tuple[object, ...]) -> None:
    """In a run without peers, starting one fails the test that does it, naming the program."""
    if event != "subprocess.Popen":
        return
    executable, argv = args[0], args[1]
    command = [str(argv)] if isinstance(argv, str | bytes) else [str(a) for a in argv]
    program = Path(str(executable or command[0])).name
    if program in PEER_PROGRAMS or "echo_node" in command[1:3]:
        raise RuntimeError(
            f"{program} started in a run without peers: mark the test @pytest.mark.peer"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def us_file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} not found (is pydicom-data installed?)")
    return Path(path)


def node_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    env.update(
        ECHO_NODE_DATA_DIR=str(data_dir),
        ECHO_NODE_DIMSE_PORT=str(port),
        ECHO_NODE_HTTP_PORT=str(free_port()),
        ECHO_NODE_HTTP_ENABLED="false",
        ECHO_NODE_BIND="127.0.0.1",
        ECHO_NODE_LOG_FORMAT="json",
        # Ingest tests run without the scheduler and worker (and so without loading torch);
        # tests of processing turn it on.
        ECHO_NODE_PROCESS_ENABLED="false",
        # One ingest process (the default is one per core) unless a test asks for more: limits
        # counted per process stay what the test expects, and kill -9 leaves no orphan.
        ECHO_NODE_INGEST_PROCESSES="1",
        **{f"ECHO_NODE_{key.upper()}": str(value) for key, value in TEST_DISK_FLOOR.items()},
    )
    env.update({f"ECHO_NODE_{k.upper()}": v for k, v in extra.items()})
    return env


def echoscu(
    port: int, calling_ae: str = "ECHOSCU", timeout: float = 10, options: Sequence[str] = ()
) -> bool:
    """A C-ECHO with dcmtk; ``options`` e.g. its TLS flags (+tls KEY CERT, +cf CA)."""
    result = subprocess.run(
        [
            "echoscu",
            "-aet",
            calling_ae,
            "-aec",
            "ECHONODE",
            "-to",
            "5",
            *options,
            "127.0.0.1",
            str(port),
        ],
        env=DCMTK_ENV,
        capture_output=True,
        timeout=timeout,
    )
    return result.returncode == 0


@dataclass
class NodeProcess:
    """`echo-node serve` started as its own process, as an operator would run it."""

    data_dir: Path
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # RLIMIT_NOFILE (soft and hard) to run the node under, e.g. systemd's default of 1024.
    descriptor_limit: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return node_env(self.data_dir, self.port, **self.extra_env)

    def start(self, *args: str) -> NodeProcess:
        self.log_path = self.data_dir.parent / f"node-{self.port}-{time.monotonic_ns()}.log"
        log = self.log_path.open("wb")
        limit = self.descriptor_limit
        self.process = subprocess.Popen(
            [str(ECHO_NODE), "serve", *args],
            env=self.env,
            stdout=log,
            stderr=log,
            preexec_fn=(
                (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
                if limit
                else None
            ),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited at start:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"node did not listen within 60 s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ECHO_NODE), *args], env=self.env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[type[NodeProcess]]:
    started: list[NodeProcess] = []

    class _Node(NodeProcess):
        def start(self, *args: str) -> NodeProcess:
            started.append(self)
            return super().start(*args)

    yield _Node
    for node in started:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)


@pytest.fixture
def node(tmp_path: Path, node_factory: type[NodeProcess]) -> NodeProcess:
    return node_factory(tmp_path / "data", free_port()).start()


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # make test installs them; a missing one is a set-up fault, not a skip
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs it")
    return path


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL 15 server on a free loopback port, stopped after the session."""
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="echo-node-pg-"))
    data, port = root / "data", free_port()
    # initdb refuses to run as root; Debian's package provides the postgres user for that.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*run_as, str(PG_BIN / "initdb"), "-D", str(data), "-U", "echo", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
    subprocess.run(
        [
            *run_as,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "echo",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE echonode",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://echo@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's PostgreSQL server for each test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    port = postgres_server.rsplit(":", 1)[1]
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "echo",
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {name}",
        ],
        check=True,
        capture_output=True,
    )
    return f"{postgres_server}/{name}"
