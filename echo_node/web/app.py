"""The HTTP application: DICOMweb under /dicom-web, the OHIF viewer under /viewer, /metrics,
the schema at /openapi.json."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from echo_node import __version__
from echo_node.node import Node
from echo_node.web import health, metrics, qido, stow, thumbnails, viewer, wado
from echo_node.web.auth import require
from echo_node.web.cors import PrefixCORS
from echo_node.web.errors import install_error_handlers

PREFIX = "/dicom-web"


def create_app(node: Node) -> FastAPI:
    app = FastAPI(
        title="Echo Node DICOMweb",
        version=__version__,
        description=(
            "STOW-RS, QIDO-RS and WADO-RS (DICOM PS3.18). Authenticate with "
            "`Authorization: Bearer <token>` (tokens: `echo-node tokens add`)."
        ),
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.state.node = node  # for the routes' NodeDep (echo_node.web.dependencies)
    anonymous = node.settings.anonymous_loopback_read
    # Reads also take the viewer's login cookie (GET only, SameSite=Strict); writes never do.
    read = require("read", node.sessions, anonymous, cookie=viewer.COOKIE)
    write = require("write", node.sessions, anonymous)
    app.include_router(stow.make_router(node, write), prefix=PREFIX)
    app.include_router(qido.make_router(node, read), prefix=PREFIX)
    app.include_router(wado.router, prefix=PREFIX, dependencies=[Depends(read)])
    app.include_router(thumbnails.make_router(node, read), prefix=PREFIX)
    if node.settings.viewer_dir:
        app.include_router(viewer.make_router(node, read))
    if node.settings.cors_origins:
        app.add_middleware(PrefixCORS, prefix=PREFIX, origins=node.settings.cors_origins)
    app.include_router(health.make_router(node))
    if node.settings.metrics_enabled:
        # Open by default, like a health check: counts and timings only (config/default.toml).
        guard = (
            [require("read", node.sessions, False)] if node.settings.metrics_require_token else []
        )
        app.include_router(metrics.make_router(node, guard))
    return app
