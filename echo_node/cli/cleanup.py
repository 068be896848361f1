"""`echo-node cleanup [--dry-run]`: apply the retention policy now, or show what it would do."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from echo_node.cli.context import state
from echo_node.retention.policy import Assessment, enabled, review
from echo_node.retention.sweep import sweep


def cleanup(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted and why; delete nothing.")
    ] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            help="With --dry-run: what would be due at this date and time (UTC), e.g. next week.",
        ),
    ] = None,
    held: Annotated[
        bool, typer.Option("--held", help="Also list the studies kept, with what holds them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete the studies the retention policy says are due (retention_days)."""
    node = state(ctx).node()
    settings = node.settings
    if as_of is not None and not dry_run:
        typer.echo("--as-of previews a later date: use it with --dry-run", err=True)
        raise typer.Exit(2)
    if not enabled(settings):
        typer.echo("retention is off (retention_days = 0): the node deletes nothing")
        return
    now = datetime.now(UTC) if as_of is None else _utc(as_of)
    if not dry_run:
        deleted = sweep(node.sessions, node.store, settings, now, node.metrics.retention_deleted)
        if as_json:
            typer.echo(json.dumps([asdict(item) for item in deleted], indent=2))
            return
        for gone in deleted:
            typer.echo(
                f"deleted {gone.kind} of {gone.study_instance_uid}: {gone.instances} instances, "
                f"{gone.bytes} bytes ({gone.reason})"
            )
        typer.echo(f"{len(deleted)} studies deleted")
        return
    with node.sessions() as session:
        assessed = review(session, settings, now, every=held)
    due = [item for item in assessed if item.due(now)]
    kept = [item for item in assessed if not item.due(now)] if held else []
    if as_json:
        typer.echo(json.dumps([_row(item, now) for item in [*due, *kept]], indent=2))
        return
    table = Table(title=f"retention as of {now:%Y-%m-%d %H:%M} UTC (dry run: nothing deleted)")
    for column in ("study UID", "would delete", "instances", "due", "why"):
        table.add_column(column, overflow="fold")
    for item in [*due, *kept]:
        row = _row(item, now)
        table.add_row(
            item.study_instance_uid,
            row["would_delete"] or "kept",
            str(row["instances"]),
            row["due_at"] or "-",
            item.reason,
        )
    Console(width=200).print(table)
    typer.echo(f"{len(due)} studies due, {sum(item.bytes for item in due)} bytes")


def _row(item: Assessment, now: datetime) -> dict[str, Any]:
    return {
        "study_instance_uid": item.study_instance_uid,
        "would_delete": item.kind if item.due(now) else None,
        "instances": len(item.files),
        "bytes": item.bytes,
        "clock": item.clock.isoformat() if item.clock else None,
        "due_at": item.due_at.isoformat(timespec="minutes") if item.due_at else None,
        "reason": item.reason,
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
