"""Print issue 16's figures for a version of the node: ``python -m tests.reliability.measure
[--code DIR]`` runs each probe against a fresh `echo-node serve` started from DIR's packages
(default: this checkout) with default settings, as the issue's reviewer did, and prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import NodeProcess, free_port
from tests.reliability import probes


@contextmanager
def running(http: bool = False) -> Iterator[tuple[NodeProcess, int, str]]:
    with tempfile.TemporaryDirectory(prefix="echo-node-measure-") as root:
        http_port = free_port()
        settings = {"allowed_peers": f"{probes.LISTED_AE}@127.0.0.1"}
        if http:
            settings.update(http_enabled="true", http_port=str(http_port))
        node = NodeProcess(Path(root) / "data", free_port(), settings)
        node.data_dir.mkdir(parents=True)
        token = ""
        if http:  # before the start, so the node's own migration has run by the CLI
            token = node.cli("tokens", "add", "--scope", "write").stdout.strip().splitlines()[-1]
        node.start()
        # The readiness check itself is a connect-and-close; give a node that keeps such a
        # connection's slot the time to let it go, so only the probe is measured.
        time.sleep(1)
        try:
            yield node, http_port, token
        finally:
            node.stop()


def measure(code: Path) -> dict[str, object]:
    os.environ["PYTHONPATH"] = str(code)
    figures: dict[str, object] = {"code": str(code)}
    with running() as (node, _, _):
        figures["slots_held_by_strangers"] = probes.slots_held_by_strangers(node.port)
    with running() as (node, _, _):
        assert node.process is not None
        figures["rss_idle_mb"] = round(probes.rss_kb(node.process.pid) / 1024)
        peak = probes.huge_rq_peak_rss_kb(node.port, node.process.pid)
        figures["rss_peak_under_huge_rq_mb"] = round(peak / 1024)
    with running() as (node, _, _):
        acked, sent = probes.truncations_acknowledged(node.port)
        figures["truncations_acknowledged"] = f"{acked}/{sent}"
    with running(http=True) as (node, http_port, token):
        probes.push_bad_inputs(node.port, http_port, token)
        node.stop()
        lines = probes.phi_lines(node.log())
    figures["phi_log_lines"] = len(lines)
    figures["phi_examples"] = [re.sub(r"\s+", " ", line)[:200] for line in lines[:3]]
    with running() as (node, _, _):
        probes.aborted_transfers(node.port)
        time.sleep(2)
        figures["tmp_bytes_after_20_aborts"] = probes.directory_bytes(node.data_dir / "tmp")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    print(json.dumps(measure(args.code.resolve()), indent=2))


if __name__ == "__main__":
    main()
