"""`echo-node selftest`: a phantom study through the running node, compared with its truth."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from echo_node.cli.context import state


def selftest(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Leave the phantom study in the node (the next self-test removes it)."
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for processing (default: selftest_timeout_s)."),
    ] = None,
) -> None:
    """Send a fresh phantom study to the running node (C-STORE on loopback), let it be
    processed, compare every reported value with the phantom's truth; exit 1 on a failure."""
    from echo_node.selftest.run import run_selftest

    node = state(ctx).node()
    try:
        result = run_selftest(node, "command", keep=keep, timeout_s=timeout)
    finally:
        node.engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(result.summary)
        for comparison in result.comparisons:
            typer.echo(f"  {'ok  ' if comparison['ok'] else 'FAIL'} {comparison['text']}")
        for note in result.notes:
            typer.echo(f"  note: {note}")
        typer.echo(f"self-test {result.selftest_id}, {result.seconds:.0f} s")
    if not result.passed:
        raise typer.Exit(1)
