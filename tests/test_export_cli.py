"""`echo-node send STUDY_UID [--to NAME]`, run as an operator would, against Orthanc."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from click.testing import Result
from typer.testing import CliRunner

from echo_node.cli import app
from echo_node.export.deliver import deliver_due
from tests.conftest import ECHO_NODE
from tests.orthanc import orthanc_factory  # noqa: F401
from tests.test_export_support import (
    JPEG_FILE,
    PLAIN_FILE,
    deliveries,
    export_node,
    make_results,
    node_environ,
)


def _send_process(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `echo-node` as its own process (slow to start: used once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    env.update(environ)
    return subprocess.run(
        [str(ECHO_NODE), "send", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _send(environ: dict[str, str], *args: str) -> Result:
    """The same command in this process."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ECHO_NODE_")}
    return CliRunner().invoke(app, ["send", *args], env={**unset, **environ})


def test_send_resends_sent_and_failed_results(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory().start()
    later = orthanc_factory()  # down for now
    destinations = [pacs.dimse_destination("pacs"), later.dicomweb_destination("later")]
    settings = {"retry_backoff_s": "0", "delivery_max_attempts": "1"}
    node = export_node(tmp_path / "data", destinations, **settings)
    results = make_results(node, tmp_path, [PLAIN_FILE, JPEG_FILE])
    study = results[0].study_instance_uid
    other = make_results(node, tmp_path, [PLAIN_FILE])  # another study: not re-sent
    assert deliver_due(node, "worker") == 6
    states = {(row.destination, row.state) for row in deliveries(node)}
    assert states == {("pacs", "sent"), ("later", "failed")}
    assert len(pacs.instances()) == 3

    # The PACS lost our instances; the other destination came up.
    for instance in pacs.instances():
        httpx.delete(f"{pacs.url}/instances/{instance['ID']}").raise_for_status()
    later.start()
    environ = node_environ(tmp_path / "data", destinations, **settings)

    done = _send_process(environ, study, "--to", "pacs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(pacs.sop_instance_uids()) == sorted(r.sop_instance_uid for r in results)
    assert later.instances() == []
    assert all(r.sop_instance_uid[-20:] in done.stdout.replace("\n", "") for r in results)

    done = _send(environ, study)
    assert done.exit_code == 0, done.output
    assert sorted(later.sop_instance_uids()) == sorted(r.sop_instance_uid for r in results)
    # The PACS got the study again (Orthanc keeps one copy of a duplicate).
    assert len(pacs.instances()) == 2
    rows = {(row.output_id, row.destination): row for row in deliveries(node)}
    for result in results:
        for name in ("pacs", "later"):
            row = rows[(result.output_id, name)]
            assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)
    (other_later,) = [
        row for (oid, name), row in rows.items() if oid == other[0].output_id and name == "later"
    ]
    assert other_later.state == "failed"


def test_send_reports_failures_and_unknown_names(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    down = orthanc_factory()
    destinations = [down.dimse_destination("pacs")]
    settings = {"retry_backoff_s": "0", "delivery_max_attempts": "2"}
    node = export_node(tmp_path / "data", destinations, **settings)
    (result,) = make_results(node, tmp_path, [PLAIN_FILE])
    environ = node_environ(tmp_path / "data", destinations, **settings)

    unknown = _send(environ, result.study_instance_uid, "--to", "nowhere")
    assert unknown.exit_code == 2
    assert "nowhere" in unknown.stderr
    assert _send(environ, "1.2.3.4.5").exit_code == 1

    failed = _send(environ, result.study_instance_uid)
    assert failed.exit_code == 1, failed.output
    assert "failed" in failed.stdout and "could not be reached" in failed.stdout
    (row,) = deliveries(node)
    assert (row.state, row.attempts) == ("failed", 2)
