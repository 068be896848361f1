"""Item 9 of issue 16: the database (patient names and IDs) is created 0640 whatever the
umask and whether or not the data directory exists; a WADO frame list cannot repeat frames."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from echo_node.node import open_node
from echo_node.settings import load_settings
from tests.reliability import corpus, probes
from tests.reliability.conftest import HostileNode


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("data_dir_exists", [True, False])
def test_the_database_is_created_0640(
    tmp_path: Path, umask_022: None, data_dir_exists: bool
) -> None:
    data = tmp_path / "data"
    if data_dir_exists:
        data.mkdir()
    node = open_node(load_settings(environ={"ECHO_NODE_DATA_DIR": str(data)}))
    try:
        with node.engine.connect() as connection:  # WAL and shared-memory files now exist
            connection.execute(text("SELECT count(*) FROM instances"))
        modes = {path.name: _mode(path) for path in data.glob("echo-node.db*")}
        assert {"echo-node.db", "echo-node.db-wal", "echo-node.db-shm"} <= set(modes)
        assert set(modes.values()) == {0o640}
    finally:
        node.engine.dispose()


def test_a_world_readable_database_is_tightened(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "data"
    open_node(load_settings(environ={"ECHO_NODE_DATA_DIR": str(data)})).engine.dispose()
    database = data / "echo-node.db"
    os.chmod(database, 0o644)
    open_node(load_settings(environ={"ECHO_NODE_DATA_DIR": str(data)})).engine.dispose()
    assert _mode(database) == 0o640


def test_a_frame_list_cannot_repeat_frames(hostile_node: HostileNode) -> None:
    instance = corpus.image()
    assert probes.store_raw(hostile_node.port, instance.dataset, instance.sop_instance_uid) == 0
    series = _series(hostile_node, instance)
    base = (
        f"http://127.0.0.1:{hostile_node.http_port}/dicom-web/studies/"
        f"{instance.study_instance_uid}/series/{series}/instances/{instance.sop_instance_uid}"
    )
    headers = {
        "Authorization": f"Bearer {hostile_node.token}",
        "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    }
    assert httpx.get(f"{base}/frames/1", headers=headers, timeout=10).status_code == 200
    repeated = httpx.get(f"{base}/frames/" + ",".join(["1"] * 2000), headers=headers, timeout=10)
    assert repeated.status_code == 400
    assert "repeat" in repeated.text


def _series(node: HostileNode, instance: corpus.Instance) -> str:
    url = (
        f"http://127.0.0.1:{node.http_port}/dicom-web/studies/{instance.study_instance_uid}/series"
    )
    answer = httpx.get(url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10)
    return str(answer.json()[0]["0020000E"]["Value"][0])
