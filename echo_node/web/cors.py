"""CORS for DICOMweb only: a viewer hosted on another origin (an OHIF of the site's own) may read
the node from a browser; the node's own pages (the viewer's login) stay same-origin.

Starlette's CORSMiddleware does the work (preflight answers, the Access-Control-* headers on
every answer including errors); this only limits it to one path prefix. Credentials (cookies)
are never allowed across origins: a viewer elsewhere sends its token as an Authorization header.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

_METHODS = ("GET", "HEAD", "POST")  # POST: STOW-RS, which still needs a write token
_HEADERS = ("Authorization", "Accept", "Content-Type")


class PrefixCORS:
    """ASGI middleware: Starlette's CORS for requests under ``prefix``, none elsewhere."""

    def __init__(self, app: ASGIApp, prefix: str, origins: Sequence[str]) -> None:
        self.app = app
        self.prefix = prefix
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=_METHODS,
            allow_headers=_HEADERS,
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == self.prefix or path.startswith(f"{self.prefix}/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
