"""`echo-node import`, `studies` and `status` on a real data directory."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import ECHO_NODE, NodeProcess, free_port, us_file


def test_import_folder_indexes_real_files_and_quarantines_the_rest(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    (folder / "nested").mkdir(parents=True)
    names = ["examples_ybr_color.dcm", "OBXXXX1A_rle.dcm", "gdcm-US-ALOKA-16.dcm"]
    for name in names:
        (folder / "nested" / name).write_bytes(us_file(name).read_bytes())
    (folder / "notes.txt").write_text("not an image")
    node = node_factory(tmp_path / "data", free_port())  # not started: import needs no server

    result = node.cli("import", str(folder))
    assert result.returncode == 1  # something was refused, and the exit code says so
    assert "3 stored" in result.stdout and "1 quarantined" in result.stdout
    again = node.cli("import", str(folder / "nested"))
    assert again.returncode == 0 and "3 duplicate" in again.stdout

    with sqlite3.connect(node.data_dir / "echo-node.db") as db:
        stored = dict(db.execute("SELECT sop_instance_uid, path FROM instances").fetchall())
    for name in names:
        sent = dcmread(us_file(name))
        assert dcmread(node.data_dir / stored[sent.SOPInstanceUID]) == sent
    sidecar = json.loads(next((node.data_dir / "quarantine").glob("*.json")).read_text())
    assert sidecar["reason"].startswith("not DICOM")

    studies = json.loads(node.cli("studies", "--json").stdout)
    assert sum(study["instances"] for study in studies) == 3
    assert all("patient_name" not in study for study in studies)
    with_phi = json.loads(node.cli("studies", "--json", "--show-phi").stdout)
    assert {study["patient_name"] for study in with_phi} >= {
        str(dcmread(us_file("examples_ybr_color.dcm")).PatientName) or None
    }

    status = json.loads(node.cli("status", "--json").stdout)
    assert status["instances"] == 3 and status["quarantined"] == 1
    assert status["disk_bytes"] > sum(us_file(name).stat().st_size for name in names)
    assert status["last_received_at"]


@pytest.mark.peer
def test_help_lists_every_command() -> None:
    result = subprocess.run([str(ECHO_NODE), "--help"], capture_output=True, text=True)
    for command in ("serve", "status", "studies", "import", "doctor"):
        assert command in result.stdout
