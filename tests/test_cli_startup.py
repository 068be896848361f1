"""The CLI and the services start without torch: every node test and every admin command
would otherwise pay seconds of import (torch loads only when a pipeline or model needs it)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_service_import_without_torch() -> None:
    probe = (
        "import sys, echo_node.cli, echo_node.service; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _loaded_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_the_durable_parts_and_the_metrics_stand_apart() -> None:
    """Opening a Node (every command does) pulls in no DIMSE, and the metrics take their
    queries, not a Node: no import cycle between echo_node.node and echo_node.metrics."""
    node = _loaded_after("import echo_node.node")
    assert not {m for m in node if m.startswith(("echo_node.dimse", "pynetdicom"))}
    scrape = _loaded_after("import echo_node.metrics.scrape")
    assert "echo_node.node" not in scrape


def test_admin_commands_start_without_the_web_app_or_the_result_writers() -> None:
    """`echo-node status`, `jobs`, `tokens` … load neither FastAPI (serve's web app) nor
    matplotlib and highdicom (the pipelines' report writers): about 1.5 s of every command's
    start, which `serve`, `worker` and `analyze` pay only when they run."""
    loaded = {m.split(".")[0] for m in _loaded_after("import echo_node.cli")}
    assert not loaded & {"fastapi", "starlette", "matplotlib", "highdicom"}
