"""`echo-node analyze FILE`: the view (and what decided it) and the findings of one instance.

The same steps as the worker's: the node's model store, the view classifier the worker uses
(echo_node.processing.classifier), and with --json the result as the node keeps it on record
(ai.result_json: strict JSON, non-finite numbers as null).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ai.findings import ClipResult
from ai.model_source import ModelSource
from echo_node.cli.context import state
from echo_node.settings import Settings


def _models(settings: Settings) -> ModelSource:
    """The node's model store (models_dir), so neural pipelines find installed weights."""
    from ai.models.store import ModelStore  # torch: imported only when a command needs it

    threads = settings.torch_threads or None
    return ModelStore(
        settings.resolved_models_dir,
        device=settings.inference_device,
        threads=threads,
        backend=settings.inference_backend,
    )


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _table(result: ClipResult) -> Table:
    table = Table(title="Findings")
    table.add_column("pipeline")
    table.add_column("finding")
    table.add_column("value", justify="right")
    table.add_column("range over beats")
    table.add_column("flags / message", overflow="fold")
    for pipeline in result.pipelines:
        label = f"{pipeline.pipeline} ({pipeline.status.value})"
        if not pipeline.findings:
            table.add_row(label, "", "", "", pipeline.message)
        for finding in pipeline.findings:
            spread = finding.spread
            table.add_row(
                label,
                finding.name,
                f"{_number(finding.value)} {finding.unit}",
                f"{_number(spread[0])} … {_number(spread[1])}" if spread else "",
                ", ".join((*finding.flags, f"by {finding.provenance.name}")),
            )
    return table


def analyze(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A DICOM ultrasound instance.", exists=True)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Decode one instance, decide its view and run its pipelines; print the findings."""
    from ai.analyze import analyze as run
    from ai.decode import DecodeError
    from ai.result_json import result_to_json
    from echo_node.processing.classifier import view_classifier

    settings = state(ctx).settings()
    try:
        models = _models(settings)
        result = run(
            file,
            models=models,
            classifier=view_classifier(models),
            min_confidence=settings.min_view_confidence,
        )
    except DecodeError as error:
        typer.echo(f"cannot decode {file}: {error}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result_to_json(result), indent=2))
        return
    console = Console()
    view = result.view
    console.print(
        f"[bold]view[/bold] {view.view.value}"
        + (f" ({view.doppler_mode})" if view.doppler_mode else "")
        + (f" [{view.label}]" if view.label else "")
        + f" — decided by {view.decided_by}, confidence {view.confidence:.2f}"
    )
    if view.reason:
        console.print(f"  {view.reason}")
    console.print(
        f"SOP Instance UID {result.sop_instance_uid}, {result.frame_count} frame(s)"
        + (f", frame time {result.frame_time_ms:.2f} ms" if result.frame_time_ms else "")
    )
    if result.message:
        console.print(result.message)
    if result.pipelines:
        console.print(_table(result))
