"""The receive path in this process, so its threads and calls can be watched: data sets hashed
as they arrive (never read back), nothing left behind by a refused or aborted instance, and an
idle association that waits instead of polling. Peers are real: dcmtk storescu and echoscu,
a pynetdicom requestor, the raw-socket peer of tests/reliability.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from echo_node import ingest
from echo_node.dimse import pynetdicom_patches, reactor
from echo_node.dimse.server import DimseServer
from echo_node.node import Node, open_node
from echo_node.service import dimse_server
from echo_node.settings import load_settings
from storage.hashing import Hasher
from tests.conftest import echoscu, free_port, us_file
from tests.dicom_files import reuid_copies, storescu
from tests.reliability.probes import aborted_transfers
from tests.test_ingest_bad_input import damaged, raw_sending, send_raw

__all__ = ["raw_sending"]  # a fixture used below

# dcmtk sends to the node under test: peers (not in `make test-unit`).
pytestmark = pytest.mark.peer


class InProcessNode:
    def __init__(self, node: Node, server: DimseServer, port: int) -> None:
        self.node, self.server, self.port = node, server, port

    @property
    def data_dir(self) -> Path:
        return self.node.store.root


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[InProcessNode]:
    port = free_port()
    settings = load_settings(
        environ={
            "ECHO_NODE_DATA_DIR": str(tmp_path / "data"),
            "ECHO_NODE_DIMSE_PORT": str(port),
            "ECHO_NODE_BIND": "127.0.0.1",
            "ECHO_NODE_HTTP_ENABLED": "false",
            "ECHO_NODE_PROCESS_ENABLED": "false",
        }
    )
    node = open_node(settings)
    # DimseServer.start sets these process-wide; they are put back for the other tests.
    chunked, tempdir = _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir
    server = replace(dimse_server(node, None), _hasher=Hasher(idle_s=0.2))
    server.start()
    try:
        yield InProcessNode(node, server, port)
    finally:
        server.stop()
        node.engine.dispose()
        _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = chunked, tempdir


def _rows(data_dir: Path) -> dict[str, tuple[str, str, int]]:
    with sqlite3.connect(data_dir / "echo-node.db") as db:
        found = db.execute("SELECT sop_instance_uid, path, sha256, size FROM instances").fetchall()
    return {sop: (path, sha, size) for sop, path, sha, size in found}


def test_dimse_instances_are_hashed_as_they_arrive_never_read_back(
    in_process: InProcessNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = ingest.digest_file
    monkeypatch.setattr(ingest, "digest_file", lambda path: reads.append(path) or real(path))
    files = [
        *reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "ybr", 3),
        us_file("OBXXXX1A_rle.dcm"),  # another transfer syntax, two regions
    ]
    for group in (files[:3], files[3:]):
        run = storescu(in_process.port, group)
        assert run.acknowledged == group, run.output
    assert reads == [], "a received file was read back to hash it"
    rows = _rows(in_process.data_dir)
    for path in files:
        sent = dcmread(path)
        stored_path, sha256, size = rows[sent.SOPInstanceUID]
        stored = in_process.data_dir / stored_path
        content = stored.read_bytes()
        assert hashlib.sha256(content).hexdigest() == sha256
        assert len(content) == size
        assert stored.name.endswith(f".{sha256[:16]}.dcm")
        assert dcmread(stored) == sent


def test_refused_and_aborted_instances_leave_nothing_behind(
    in_process: InProcessNode, tmp_path: Path, raw_sending: None
) -> None:
    for kind in ("truncated", "not_dicom", "no_sop_instance_uid"):
        status, _comment = send_raw(in_process.port, damaged(tmp_path, kind))
        assert status != 0x0000, kind
    aborted_transfers(in_process.port, count=4, megabytes=2, abort=True)
    aborted_transfers(in_process.port, count=4, megabytes=2, abort=False)
    good = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "good", 1)
    assert storescu(in_process.port, good).acknowledged == good
    tmp = in_process.data_dir / "tmp"
    deadline = time.monotonic() + 10
    while (list(tmp.iterdir()) or in_process.server._hasher.running) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    assert not in_process.server._hasher.running, "the hashing thread did not end"
    assert not [t for t in threading.enumerate() if t.name == "sha256"]
    quarantined = sorted(p.suffix for p in (in_process.data_dir / "quarantine").iterdir())
    assert quarantined == [".dcm", ".dcm", ".dcm", ".json", ".json", ".json"]
    assert len(_rows(in_process.data_dir)) == 1


def test_an_idle_association_waits_instead_of_polling(
    in_process: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"ready": 0, "get_msg": 0}

    def counted(name: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return method(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(reactor.ReactiveDUL, "_ready", counted("ready", reactor.ReactiveDUL._ready))
    monkeypatch.setattr(
        pynetdicom_patches.SpoolingDIMSE,
        "get_msg",
        counted("get_msg", pynetdicom_patches.SpoolingDIMSE.get_msg),
    )
    ae = AE(ae_title="IDLESCU")
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", in_process.port, ae_title="ECHONODE")
    assert association.is_established
    try:
        assert association.send_c_echo().Status == 0x0000
        time.sleep(0.2)
        before = dict(calls)
        time.sleep(1.0)
        idle = {name: calls[name] - before[name] for name in calls}
        # pynetdicom's reactors poll every millisecond: about 1000 turns each in that second.
        assert idle["ready"] <= 4, idle
        assert idle["get_msg"] <= 15, idle
        started = time.perf_counter()
        for _ in range(20):
            assert association.send_c_echo().Status == 0x0000
        assert (time.perf_counter() - started) / 20 < 0.05
    finally:
        started = time.perf_counter()
        association.release()
    assert association.is_released
    assert time.perf_counter() - started < 1.0
    assert echoscu(in_process.port)


def test_durability_order_is_fsync_link_directory_fsync_commit(
    in_process: InProcessNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's fsync (made by the reader as the last fragment lands) comes before its
    link under the final name, which comes before the directory's fsync, which comes before
    the row's commit: for every instance."""
    events: list[tuple[str, int]] = []
    lock = threading.Lock()
    real_fsync, real_link = os.fsync, os.link
    real_index = ingest.Ingestor._index

    def fsync(fd: int) -> None:
        real_fsync(fd)
        with lock:
            events.append(("fsync", os.fstat(fd).st_ino))

    def link(source: Any, target: Any, **kwargs: Any) -> None:
        inode = os.stat(source).st_ino
        real_link(source, target, **kwargs)
        with lock:
            events.append(("link", inode))
            events.append(("into", os.stat(Path(target).parent).st_ino))

    def index(self: ingest.Ingestor, staged: ingest.Staged) -> ingest.IngestResult:
        result = real_index(self, staged)  # committed when it returns
        with lock:
            events.append(("commit", os.stat(staged.target).st_ino))
        return result

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(ingest.Ingestor, "_index", index)
    files = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "order", 5, series_per=2)
    assert storescu(in_process.port, files).acknowledged == files
    commits = [inode for kind, inode in events if kind == "commit"]
    assert len(commits) == 5
    for inode in commits:
        file_synced = events.index(("fsync", inode))
        linked = events.index(("link", inode))
        directory = events[linked + 1][1]
        directory_synced = events.index(("fsync", directory), linked)
        assert file_synced < linked < directory_synced < events.index(("commit", inode))
