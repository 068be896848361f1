"""`echo-node send STUDY_UID [--to NAME]`: deliver a study's results again, now."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from echo_node.cli.context import state
from echo_node.export.deliver import deliver_pass
from echo_node.export.queue import requeue
from echo_node.logsetup import configure_logging
from echo_node.node import Node
from storage.models import Delivery, Output, Study
from storage.queue import PENDING, SENT, utc_now

# Passes at most: each claims a batch, so this bounds the command's time on a long backlog.
MAX_PASSES = 50


def send(
    ctx: typer.Context,
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID.")],
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="Destination name (repeatable); default: all configured."),
    ] = None,
) -> None:
    """Queue every result of the study again (sent and failed ones too) and deliver them."""
    settings = state(ctx).settings()
    configure_logging(settings.log_level, settings.log_format)
    configured = [destination.name for destination in settings.destinations]
    names = to or configured
    unknown = sorted(set(names) - set(configured))
    if unknown or not names:
        what = ", ".join(unknown) if unknown else "none configured"
        typer.echo(f"unknown destination: {what} (configured: {configured})", err=True)
        raise typer.Exit(2)
    node = state(ctx).node()
    with node.sessions.begin() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == study_uid)).first()
        if study is None:
            typer.echo(f"no study {study_uid}", err=True)
            raise typer.Exit(1)
        if study.qa:  # a phantom: its results must never reach a PACS
            typer.echo(f"study {study_uid} is a self-test study; it is never sent", err=True)
            raise typer.Exit(1)
        study_id = study.id
        output_ids = list(session.scalars(select(Output.id).where(Output.study_id == study_id)))
        requeue(session, output_ids, names)
    if not output_ids:
        typer.echo(f"study {study_uid} has no results to send", err=True)
        raise typer.Exit(1)
    worker_id = f"send@{socket.gethostname()}:{os.getpid()}"
    for _ in range(MAX_PASSES):
        if not deliver_pass(node, worker_id) or _settled(node, output_ids, names):
            break
    _print(node, output_ids, names)


def _rows(node: Node, output_ids: list[int], names: list[str]) -> list[tuple[Delivery, Output]]:
    with node.sessions() as session:
        return [
            (delivery, output)
            for delivery, output in session.execute(
                select(Delivery, Output)
                .join(Output, Delivery.output_id == Output.id)
                .where(Delivery.output_id.in_(output_ids), Delivery.destination.in_(names))
                .order_by(Output.kind, Output.sop_instance_uid, Delivery.destination)
            )
        ]


def _settled(node: Node, output_ids: list[int], names: list[str]) -> bool:
    """True when none of these deliveries is still due now (sent, failed or backing off)."""
    now = utc_now()
    return not any(
        delivery.state == PENDING and delivery.next_attempt_at <= now
        for delivery, _ in _rows(node, output_ids, names)
    )


def _print(node: Node, output_ids: list[int], names: list[str]) -> None:
    rows = _rows(node, output_ids, names)
    table = Table("kind", "destination", "state", "attempts", "error")
    table.add_column("SOP Instance UID", overflow="fold")
    for delivery, output in rows:
        table.add_row(
            output.kind,
            delivery.destination,
            delivery.state,
            str(delivery.attempts),
            delivery.last_error or "",
            output.sop_instance_uid,
        )
    Console(width=200).print(table)
    if any(delivery.state != SENT for delivery, _ in rows):
        raise typer.Exit(1)
