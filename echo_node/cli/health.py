"""`echo-node health [--ready] [--wait S]`: ask the running node's /healthz or /readyz.

For probes that run a command rather than an HTTP request: Docker's HEALTHCHECK, a systemd
ExecStartPost that returns once the node answers. The URL comes from the settings (http_port,
HTTPS when tls_certificate is set), on loopback when the node binds every interface.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from echo_node.cli.context import state


def health(
    ctx: typer.Context,
    ready: Annotated[
        bool,
        typer.Option(
            "--ready", help="Ask /readyz (database, store, free space) instead of /healthz."
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(min=0, help="Keep asking for up to this many seconds.")
    ] = 0.0,
) -> None:
    """Exit 0 when the node answers that it is alive (or ready), 1 otherwise."""
    import httpx

    settings = state(ctx).settings()
    if not settings.http_enabled:
        typer.echo("http_enabled = false: the node serves no /healthz to ask", err=True)
        raise typer.Exit(2)
    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.tls_certificate else "http"
    url = f"{scheme}://{host}:{settings.http_port}/{'readyz' if ready else 'healthz'}"
    deadline = time.monotonic() + wait
    while True:
        try:
            # The node's own certificate names its host, not the loopback address asked here;
            # the probe sends nothing and reads only a status.
            response = httpx.get(url, timeout=5.0, verify=False)
            if response.status_code == 200:
                typer.echo(f"{url}: {response.json().get('status')}")
                return
            answer = f"HTTP {response.status_code} {response.text[:500]}"
        except httpx.HTTPError as exc:
            answer = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            typer.echo(f"{url}: {answer}", err=True)
            raise typer.Exit(1)
        time.sleep(1.0)
