"""The SCP against real dcmtk peers: what is acknowledged is on disk, intact and indexed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import DCMTK_ENV, NodeProcess, echoscu, free_port, us_file
from tests.dicom_files import reuid_copies, storescu

REAL_US_FILES = [
    "examples_ybr_color.dcm",  # multi-frame JPEG baseline YBR, one region
    "examples_palette.dcm",  # palette colour, MaxY1 past the last row
    "OBXXXX1A_rle.dcm",  # RLE, two regions
    "OBXXXX1A_expb.dcm",  # explicit big endian
    "gdcm-US-ALOKA-16.dcm",  # 16-bit palette, three regions
    "US1_J2KR.dcm",  # JPEG 2000 lossless
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG lossless, monochrome
]


def rows(data_dir: Path) -> dict[str, tuple[str, str, int]]:
    """SOP Instance UID -> (path, sha256, version) for the newest version of each."""
    with sqlite3.connect(data_dir / "echo-node.db") as db:
        found = db.execute(
            "SELECT sop_instance_uid, path, sha256, version FROM instances ORDER BY version"
        ).fetchall()
    return {sop: (path, sha, version) for sop, path, sha, version in found}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_echo(node: NodeProcess) -> None:
    assert echoscu(node.port)


@pytest.mark.parametrize("name", REAL_US_FILES)
def test_real_ultrasound_files_arrive_intact(node: NodeProcess, name: str) -> None:
    source = us_file(name)
    run = storescu(node.port, [source])
    assert run.returncode == 0, run.output
    assert run.acknowledged == [source]

    sent = dcmread(source)
    indexed = rows(node.data_dir)[sent.SOPInstanceUID]
    stored_path = node.data_dir / indexed[0]
    stored = dcmread(stored_path)
    assert stored == sent  # every element of the dataset, pixel data included
    assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert indexed[1] == sha256(stored_path)
    # Readable by the node's group, not by the world.
    assert stored_path.stat().st_mode & 0o777 == 0o640


def test_same_bytes_twice_is_stored_once_other_bytes_make_a_version(
    node: NodeProcess, tmp_path: Path
) -> None:
    source = us_file("examples_palette.dcm")
    assert storescu(node.port, [source, source]).acknowledged == [source, source]
    changed = dcmread(source)
    changed.InstitutionName = "Another Hospital"
    changed_path = tmp_path / "changed.dcm"
    changed.save_as(changed_path)
    assert storescu(node.port, [changed_path]).acknowledged == [changed_path]

    with sqlite3.connect(node.data_dir / "echo-node.db") as db:
        versions = db.execute(
            "SELECT version, path FROM instances WHERE sop_instance_uid = ? ORDER BY version",
            (changed.SOPInstanceUID,),
        ).fetchall()
    assert [version for version, _ in versions] == [1, 2]
    assert dcmread(node.data_dir / versions[1][1]).InstitutionName == "Another Hospital"
    assert "new version" in node.log()


def test_kill_9_loses_no_acknowledged_instance(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    files = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "send", 200)
    node = node_factory(tmp_path / "data", free_port()).start()
    result: dict[str, object] = {}
    sender = threading.Thread(target=lambda: result.update(run=storescu(node.port, files)))
    sender.start()
    instances = node.data_dir / "instances"
    deadline = time.monotonic() + 120
    while sum(1 for _ in instances.rglob("*.dcm")) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    node.stop(signal.SIGKILL)
    sender.join(120)
    run = result["run"]
    acknowledged = run.acknowledged  # type: ignore[attr-defined]
    assert 30 <= len(acknowledged) < 200, "the kill should land part way"

    restarted = node_factory(node.data_dir, free_port()).start()
    assert echoscu(restarted.port)
    indexed = rows(node.data_dir)
    for path in acknowledged:
        sent = dcmread(path)
        stored_path, stored_sha, _ = indexed[sent.SOPInstanceUID]
        assert sha256(node.data_dir / stored_path) == stored_sha
        assert dcmread(node.data_dir / stored_path) == sent
    assert list((node.data_dir / "tmp").iterdir()) == []


def test_sigterm_finishes_in_flight_and_exits_cleanly(node: NodeProcess, tmp_path: Path) -> None:
    files = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "send", 150)
    result: dict[str, object] = {}
    sender = threading.Thread(target=lambda: result.update(run=storescu(node.port, files)))
    sender.start()
    deadline = time.monotonic() + 60
    while len(rows(node.data_dir) if (node.data_dir / "echo-node.db").exists() else {}) < 30:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert node.stop(signal.SIGTERM, timeout=60) == 0
    sender.join(120)
    acknowledged = result["run"].acknowledged  # type: ignore[attr-defined]
    indexed = rows(node.data_dir)
    assert len(acknowledged) >= 30
    for path in acknowledged:
        assert dcmread(path, stop_before_pixels=True).SOPInstanceUID in indexed
    assert "DIMSE service stopped" in node.log()


def test_eight_senders_at_once_lose_nothing(node: NodeProcess, tmp_path: Path) -> None:
    batches = [
        reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / f"batch{i}", 25)
        for i in range(8)
    ]
    processes = [
        subprocess.Popen(
            [
                "storescu",
                "-xy",
                "-aet",
                f"SENDER{i}",
                "-aec",
                "ECHONODE",
                "127.0.0.1",
                str(node.port),
                *map(str, batch),
            ],
            env=DCMTK_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i, batch in enumerate(batches)
    ]
    for process in processes:
        output = process.communicate(timeout=240)[0].decode(errors="replace")
        assert process.returncode == 0, output
    indexed = rows(node.data_dir)
    for batch in batches:
        for path in batch:
            assert dcmread(path, stop_before_pixels=True).SOPInstanceUID in indexed
    assert len(indexed) == 200


def test_allowed_peers_reject_unknown_calling_ae(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    node = node_factory(
        tmp_path / "data", free_port(), {"allowed_peers": "GOODSCU,OTHER@10.9.9.0/24"}
    ).start()
    assert not echoscu(node.port, calling_ae="BADSCU")
    assert echoscu(node.port, calling_ae="GOODSCU")
    assert not echoscu(node.port, calling_ae="OTHER")  # right AE title, wrong network
    rejected = [
        json.loads(line)
        for line in node.log().splitlines()
        if line.startswith("{") and "association rejected" in line
    ]
    assert {entry["peer_ae"] for entry in rejected} == {"BADSCU", "OTHER"}
    assert all(entry["peer_address"] == "127.0.0.1" for entry in rejected)


def test_logs_carry_uids_not_patient_data(node: NodeProcess) -> None:
    source = us_file("examples_ybr_color.dcm")
    sent = dcmread(source, stop_before_pixels=True)
    assert storescu(node.port, [source]).returncode == 0
    node.stop()
    log = node.log()
    assert sent.SOPInstanceUID in log
    for value in (str(sent.PatientName), str(sent.PatientID)):
        if value.strip():
            assert value not in log
    listing = node.cli("studies")
    assert str(sent.PatientName) not in listing.stdout
    assert str(sent.PatientName).split("^")[0] in node.cli("studies", "--show-phi").stdout


@pytest.mark.peer
def test_config_error_names_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "ECHO_NODE_DIMSE_PORT": "not-a-port", "ECHO_NODE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(Path(os.sys.executable).parent / "echo-node"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "dimse_port" in result.stderr and "ECHO_NODE_DIMSE_PORT" in result.stderr
