"""Item 6 of issue 16: a transfer that ends half-way (A-ABORT, or the connection dropped)
leaves nothing in tmp/: its partial file goes when its association ends, not at the next
start."""

from __future__ import annotations

import time

import pytest

from tests.reliability import probes
from tests.reliability.conftest import HostileNode


@pytest.mark.parametrize("abort", [True, False], ids=["a-abort", "dropped"])
def test_partial_files_go_when_the_association_ends(hostile_node: HostileNode, abort: bool) -> None:
    tmp = hostile_node.data_dir / "tmp"
    probes.aborted_transfers(hostile_node.port, count=10, megabytes=2, abort=abort)
    # The node may still be reading what was sent before the abort (a loaded host).
    deadline = time.monotonic() + 5
    while probes.directory_bytes(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert probes.directory_bytes(tmp) == 0
    assert list(tmp.iterdir()) == []
