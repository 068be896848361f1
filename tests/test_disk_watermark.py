"""Disk safety on a small filesystem the test mounts (a 40 MB tmpfs holding the whole data
directory, database included): filled by real storescu associations until the node refuses.

What must hold: an association that started above the watermark finishes; the next one is
rejected (transient), STOW-RS answers 507, `status` and `doctor` say why; every instance
storescu saw acknowledged is on disk with its sha256 and indexed once, nothing else is; and
once space is freed the node takes data again without a restart.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from tests.conftest import NodeProcess, free_port, us_file
from tests.dicom_files import reuid_copies, storescu
from tests.reliability import probes

WATERMARK_PERCENT = 35  # of 40 MB: the node refuses below 14 MB free


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "mounting a 40 MB tmpfs needs root (CAP_SYS_ADMIN), which this run does not have: "
            + mounted.stderr.strip()
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _indexed(data_dir: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(data_dir / "echo-node.db") as db:
        rows = db.execute("SELECT sop_instance_uid, sha256, path FROM instances").fetchall()
    assert len(rows) == len({row[0] for row in rows}), "an instance indexed twice"
    return {uid: (sha, path) for uid, sha, path in rows}


def test_fill_until_refused_then_take_data_again_when_space_returns(
    small_disk: Path, node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    data_dir = small_disk / "data"
    http_port = free_port()
    node = node_factory(
        data_dir,
        free_port(),
        extra_env={
            "disk_min_free_percent": str(WATERMARK_PERCENT),
            "disk_min_free_gb": "0",
            "http_enabled": "true",
            "http_port": str(http_port),
        },
    ).start()
    token = node.cli("tokens", "add", "--scope", "write").stdout.strip().splitlines()[-1]
    files = reuid_copies(us_file("US1_UNCR.dcm"), tmp_path / "send", 40)  # 0.9 MB each
    filler = small_disk / "filler"
    usage = shutil.disk_usage(small_disk)
    watermark = usage.total * WATERMARK_PERCENT / 100
    # Leave about 6 MB above the watermark: a few associations' worth.
    with filler.open("wb") as handle:
        handle.write(b"\0" * int(usage.free - watermark - 6e6))

    acknowledged: list[Path] = []
    batches = [files[i : i + 3] for i in range(0, len(files), 3)]
    refused, refused_batch = None, []
    for batch in batches:
        run = storescu(node.port, batch)
        if not run.acknowledged:
            refused, refused_batch = run, batch
            break
        # An association accepted above the watermark finishes, even across it.
        assert run.acknowledged == batch, run.output
        acknowledged += run.acknowledged
    assert refused is not None, "the node never refused"
    assert "Association Rejected" in refused.output, refused.output
    assert "Rejected Transient" in refused.output, refused.output
    assert "Reason: Temporary Congestion" in refused.output, refused.output
    space = shutil.disk_usage(small_disk)
    assert 0 < space.free < watermark  # refused before the disk was full
    assert len(acknowledged) >= 6

    log = node.log()
    assert "free disk space below the watermark" in log
    assert "association rejected: free disk space below the watermark" in log
    stow = probes.stow(http_port, token, [files[-1].read_bytes()])
    assert stow.status_code == 507, stow.text
    assert "watermark" in stow.json()["message"]
    status = json.loads(node.cli("status", "--json").stdout)
    assert status["disk_free"]["accepting"] is False
    doctor = node.cli("doctor", "--json")
    rows = {row["name"]: row for row in json.loads(doctor.stdout)}
    assert doctor.returncode == 1
    assert rows["disk space"]["status"] == "FAIL"
    assert "refuses new associations" in rows["disk space"]["detail"]
    ready = httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=10)
    assert ready.status_code == 503
    assert {c["name"]: c["ok"] for c in ready.json()["checks"]} == {
        "database": True,
        "store": True,
        "disk": False,
    }
    assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10).status_code == 200
    probe = node.cli("health", "--ready")  # what Docker's HEALTHCHECK and compose run
    assert probe.returncode == 1 and '"disk","ok":false' in probe.stderr
    assert node.cli("health").returncode == 0  # alive all the same
    metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    assert "\necho_node_refusing_new_data 1.0\n" in metrics

    # Every acknowledged instance is there, byte for byte, indexed once; nothing else is.
    indexed = _indexed(data_dir)
    sent = {
        str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): path for path in acknowledged
    }
    assert set(indexed) == set(sent)
    for uid, (sha256, relative) in indexed.items():
        stored = data_dir / relative
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha256
        expected = dcmread(sent[uid])
        del expected[0xFFFCFFFC]  # Data Set Trailing Padding, which storescu does not send
        assert dcmread(stored) == expected  # every other element, pixel data included
    on_disk = {p.relative_to(data_dir).as_posix() for p in (data_dir / "instances").rglob("*.dcm")}
    assert on_disk == {relative for _, relative in indexed.values()}
    assert list((data_dir / "tmp").iterdir()) == []

    filler.unlink()  # space comes back: no restart, the next association is taken
    retry = storescu(node.port, refused_batch)
    assert retry.acknowledged == refused_batch, retry.output
    assert "free disk space back above the watermark" in node.log()
    assert json.loads(node.cli("status", "--json").stdout)["disk_free"]["accepting"] is True
    assert probes.stow(http_port, token, [files[-1].read_bytes()]).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=10).status_code == 200
    assert node.cli("health", "--ready").returncode == 0
    assert node.stop() == 0
