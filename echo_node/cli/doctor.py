"""`echo-node doctor`: the checks to run when something looks wrong; exit 1 on any FAIL."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from echo_node.cli.context import state
from echo_node.doctor.report import worst
from echo_node.doctor.run import run_checks

_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verify_files: Annotated[
        bool,
        typer.Option("--verify-files", help="Hash every stored file against the index (slow)."),
    ] = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Safe repairs only: move orphan files to quarantine, remove stale tmp files.",
        ),
    ] = False,
) -> None:
    """Check settings, database, data directory, store, queue, models; WARN does not fail."""
    checks = run_checks(state(ctx).config_file, verify_files=verify_files, fix=fix)
    if as_json:
        typer.echo(json.dumps([asdict(check) for check in checks], indent=2))
    else:
        table = Table("check", "status", "detail")
        for check in checks:
            table.add_row(check.name, f"[{_STYLE[check.status]}]{check.status}[/]", check.text)
        Console().print(table)
    raise typer.Exit(1 if worst(checks) == "FAIL" else 0)
