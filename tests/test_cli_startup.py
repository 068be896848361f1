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
