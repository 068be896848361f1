"""`echo-node conformance`: the DICOM Conformance Statement, rendered from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def conformance(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (default: print it).")
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Exit 1 when this file differs from what the code says."),
    ] = None,
) -> None:
    """Render the DICOM Conformance Statement (PS3.2) from the code's own lists."""
    from echo_node.conformance.render import render

    text = render()
    if check is not None:
        if check.read_text(encoding="utf-8") != text:
            typer.echo(f"{check} differs from the code: echo-node conformance --out {check}")
            raise typer.Exit(1)
        typer.echo(f"{check} matches the code")
        return
    if out is not None:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
        return
    typer.echo(text, nl=False)
