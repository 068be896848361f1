"""`python -m echo_node.web [CONFIG]`: the HTTP service alone (tests, or a separate process)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from echo_node.logsetup import configure_logging
from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.server import run_http


def main() -> None:
    settings = load_settings(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_http(open_node(settings), stop)


if __name__ == "__main__":
    main()
