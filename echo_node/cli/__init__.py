"""The `echo-node` command. Each command lives in its own module and is registered here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from echo_node.cli import (
    analyze,
    cleanup,
    conformance,
    doctor,
    health,
    importer,
    jobs,
    models,
    phantom,
    reprocess,
    selftest,
    send,
    serve,
    studies,
    tokens,
    worker,
)
from echo_node.cli.context import CliState

app = typer.Typer(
    help="Echo Node: a DICOM-native PACS node for echocardiography.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="TOML file overriding config/default.toml.", exists=True
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config_file=config)


app.command("serve")(serve.serve)
app.command("status")(studies.status)
app.command("studies")(studies.studies)
app.command("import")(importer.import_paths)
app.command("phantom")(phantom.phantom)
app.command("analyze")(analyze.analyze)
app.add_typer(tokens.app, name="tokens")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.command("reprocess")(reprocess.reprocess)
app.command("worker")(worker.worker)
app.command("send")(send.send)
app.command("doctor")(doctor.doctor)
app.command("cleanup")(cleanup.cleanup)
app.command("conformance")(conformance.conformance)
app.command("health")(health.health)
app.command("selftest")(selftest.selftest)


def main() -> None:
    app()
