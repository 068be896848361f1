"""Item 7 of issue 16: when a write fails for lack of space, the sender gets 0xA700 (DIMSE) or
507 (STOW-RS) every time, nothing is left behind (tmp/, instances/, quarantine/), the log says
what happened, and the node takes instances again as soon as space is free.

The node's data directory is a small tmpfs the test mounts (root, as CI runs; skipped with the
reason where mounting is not permitted); a filler file sets the free space exactly.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from echo_node.settings import load_settings
from storage.db import make_engine
from storage.models import Instance
from tests.conftest import NodeProcess
from tests.reliability import corpus, probes
from tests.reliability.conftest import http_port, start_node

DISK_MB = 24
OUT_OF_RESOURCES = 0xA700


@dataclass
class SmallDisk:
    root: Path
    filler: Path

    def free(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def leave_free(self, wanted: int) -> None:
        """Grow or shrink the filler so that about ``wanted`` bytes are free."""
        current = self.filler.stat().st_size if self.filler.exists() else 0
        size = max(0, current + self.free() - wanted)
        with self.filler.open("wb") as handle:
            if size:
                os.posix_fallocate(handle.fileno(), 0, size)

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0750", "tmpfs", str(root)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test (needs root): {mounted.stderr}")
    try:
        yield SmallDisk(root, root / "filler")
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def _unindexed(node: NodeProcess) -> list[str]:
    """Files in instances/ with no row: what a failed commit would leave."""
    engine = make_engine(load_settings(environ=node.env).resolved_database_url)
    try:
        with engine.connect() as connection:
            indexed = set(connection.scalars(select(Instance.path)))
    finally:
        engine.dispose()
    root = node.data_dir
    return [
        path.relative_to(root).as_posix()
        for path in (root / "instances").rglob("*.dcm")
        if path.relative_to(root).as_posix() not in indexed
    ]


def _left_behind(node: NodeProcess) -> list[str]:
    tmp = [path.name for path in (node.data_dir / "tmp").iterdir()]
    quarantined = [path.name for path in (node.data_dir / "quarantine").iterdir()]
    return tmp + quarantined + _unindexed(node)


@pytest.mark.peer
def test_disk_full_answers_a700_and_507_leaves_nothing_and_recovers(
    small_disk: SmallDisk,
) -> None:
    # The free-space watermark would refuse associations on this tiny disk before any write
    # could fail; this test is about the writes themselves (the watermark has its own tests).
    node, token = start_node(
        small_disk.root, http=True, disk_min_free_percent="0", disk_min_free_gb="0"
    )
    try:
        _fill_and_recover(node, token, small_disk)
    finally:
        node.stop()
    log = node.log()
    assert "received data set could not be written" in log
    assert "nothing kept, the sender still has it" in log
    assert "could not be kept in quarantine" in log or "quarantined" in log
    assert "kept in quarantine" not in log.replace("could not be kept in quarantine", "")


def _fill_and_recover(node: NodeProcess, token: str, small_disk: SmallDisk) -> None:
    size = len(corpus.image(rows=1024, columns=1024).part10())
    statuses = []
    # From "the data set does not fit" through "it fits but its row does not" to "it fits".
    for spare in (-size // 2, -4096, 4096, 12288, 24576, 49152):
        instance = corpus.image(rows=1024, columns=1024)
        small_disk.leave_free(size + spare)
        status = probes.store_raw(node.port, instance.dataset, instance.sop_instance_uid)
        statuses.append(status)
        assert status in (0x0000, OUT_OF_RESOURCES), (spare, hex(status))
        assert _left_behind(node) == [], spare
    # Both failures happened: the data set not written, and its row not committed.
    assert statuses.count(OUT_OF_RESOURCES) >= 2 and statuses[-1] == 0x0000

    # STOW-RS: the body itself does not fit, then the instance does not.
    for spare in (-size // 2, 4096):
        instance = corpus.image(rows=1024, columns=1024)
        small_disk.leave_free(size + spare)
        answer = probes.stow(http_port(node), token, [instance.part10()])
        assert answer.status_code in (200, 507), (spare, answer.text)
        assert _left_behind(node) == [], spare
        if spare < 0:
            assert answer.status_code == 507

    # A bad instance on a full disk is still refused as bad, and not half-kept either.
    instance = corpus.image(rows=1024, columns=1024)
    small_disk.leave_free(size + 4096)
    cut = instance.dataset[: len(instance.dataset) - 100]
    assert probes.store_raw(node.port, cut, instance.sop_instance_uid) == 0xC000
    assert _left_behind(node) == []

    # Space is back: the node's own leftovers do not keep the disk full.
    small_disk.release()
    instance = corpus.image(rows=1024, columns=1024)
    assert probes.store_raw(node.port, instance.dataset, instance.sop_instance_uid) == 0x0000
    assert _left_behind(node) == []
