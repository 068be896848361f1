"""`echo-node worker`: process queued studies without serving DICOM (scale-out workers)."""

from __future__ import annotations

import typer

from echo_node.cli.context import state
from echo_node.logsetup import configure_logging


def worker(ctx: typer.Context) -> None:
    """Sweep for stable studies and run jobs until SIGTERM; several may share PostgreSQL."""
    from echo_node.service import run_worker, stop_on_signals  # heavy: see serve.py

    settings = state(ctx).settings()
    configure_logging(settings.log_level, settings.log_format)
    run_worker(settings, stop_on_signals())
