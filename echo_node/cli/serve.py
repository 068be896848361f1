"""`echo-node serve`: run the node in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

from typing import Annotated

import typer

from echo_node.cli.context import state
from echo_node.logsetup import configure_logging
from echo_node.settings import ConfigError


def serve(
    ctx: typer.Context,
    ingest_processes: Annotated[
        int | None,
        typer.Option(min=1, help="Processes accepting DIMSE associations (default: the setting)."),
    ] = None,
) -> None:
    """Run the DICOM services until stopped; SIGTERM finishes the instances in flight first."""
    # Here, not at the top: the web app and the pipelines it pulls in would slow every command.
    from echo_node.service import serve as run_services
    from echo_node.service import stop_on_signals

    cli = state(ctx)
    settings = cli.settings()
    if ingest_processes is not None:
        settings = settings.model_copy(update={"ingest_processes": ingest_processes})
    configure_logging(settings.log_level, settings.log_format)
    stop = stop_on_signals()
    try:
        run_services(settings, cli.config_file, stop)
    except ConfigError as exc:  # a setting that validates but whose files are unusable
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
