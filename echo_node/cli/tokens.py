"""`echo-node tokens add|list|revoke`: bearer tokens of the DICOMweb service."""

from __future__ import annotations

from typing import Annotated

import typer

from echo_node.cli.context import state

app = typer.Typer(
    help="Bearer tokens for DICOMweb (STOW-RS needs scope write).", no_args_is_help=True
)


@app.command("add")
def add(
    ctx: typer.Context,
    scope: Annotated[str, typer.Option(help="read (QIDO/WADO) or write (also STOW).")],
    name: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
) -> None:
    """Create a token and print it once: only its hash is kept."""
    # In each command, not at the top: echo_node.web.auth brings FastAPI, which would slow
    # every other command's start.
    from echo_node.web.auth import SCOPES, add_token

    if scope not in SCOPES:
        typer.echo(f"--scope must be one of: {', '.join(SCOPES)}", err=True)
        raise typer.Exit(2)
    token_id, token = add_token(state(ctx).node().sessions, scope, name)  # type: ignore[arg-type]
    typer.echo(f"token {token_id} ({scope}); store it now, it cannot be shown again:")
    typer.echo(token)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List tokens (id, scope, name, created, revoked); never the tokens themselves."""
    from echo_node.web.auth import list_tokens

    tokens = list_tokens(state(ctx).reader().sessions)
    if not tokens:
        typer.echo("no tokens")
    for info in tokens:
        revoked = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        typer.echo(
            f"{info.id}\t{info.scope}\t{info.name or '-'}\t"
            f"created {info.created_at:%Y-%m-%d %H:%M}\t{revoked}"
        )


@app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token by id; requests with it are refused from then on."""
    from echo_node.web.auth import revoke_token

    if not revoke_token(state(ctx).node().sessions, token_id):
        typer.echo(f"no active token with id {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")
