"""`echo-node import PATH…`: files or folders into the store, with the SCP's checks."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from echo_node.cli.context import state
from echo_node.envelope import rewrap
from echo_node.ingest import Ingestor, IngestResult, Peer
from echo_node.logsetup import configure_logging

logger = logging.getLogger(__name__)
IMPORT_PEER = Peer(ae_title=None, address="import", transport="import")


def import_paths(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Files or folders.")],
) -> None:
    """Import DICOM files (folders are walked) into the store; refused files are quarantined."""
    settings = state(ctx).settings()
    configure_logging(settings.log_level, settings.log_format)
    node = state(ctx).node()
    outcomes: Counter[str] = Counter()
    for path in _files(paths):
        result = import_file(node.ingestor, path)
        outcomes[result.outcome] += 1
        if not result.acknowledged:
            typer.echo(f"{result.outcome}: {path.name}: {result.reason}", err=True)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    typer.echo(f"imported: {summary or 'nothing'}")
    if outcomes["failed"] or outcomes["quarantined"]:
        raise typer.Exit(1)


def import_file(ingestor: Ingestor, path: Path) -> IngestResult:
    raw = ingestor.store.new_temp_path(".import")
    shutil.copyfile(path, raw)
    wrapped = ingestor.store.new_temp_path(".dcm")
    try:
        rewrap(raw, wrapped)
    except Exception:  # unreadable: let ingest quarantine the original bytes with the reason
        wrapped.unlink(missing_ok=True)
        return ingestor.ingest(raw, IMPORT_PEER)
    raw.unlink()
    return ingestor.ingest(wrapped, IMPORT_PEER)


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.name != "DICOMDIR":
                    yield child
        else:
            yield path
