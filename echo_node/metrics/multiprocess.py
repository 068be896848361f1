"""prometheus_client's multiprocess mode for `echo-node serve` and its ingest processes.

Each process writes its counters to files in one directory; the scrape adds them up. The
directory is new for each run of serve (counters start at zero on a restart, as Prometheus
expects) and is removed when serve ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from echo_node.metrics import MULTIPROCESS_ENV

logger = logging.getLogger(__name__)


def enter_multiprocess_mode() -> Path | None:
    """Make a fresh metrics directory and point this process and its children at it.

    Call before anything imports prometheus_client; returns None (metrics of this process
    only) if it already was.
    """
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROCESS_ENV):
        logger.error("prometheus_client loaded too early: /metrics counts this process only")
        return None
    directory = Path(tempfile.mkdtemp(prefix="echo-node-metrics-"))
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return directory


def leave_multiprocess_mode(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
