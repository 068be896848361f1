"""Running the HTTP service with uvicorn, from `echo-node serve` or `python -m echo_node.web`."""

from __future__ import annotations

import logging
import threading

import uvicorn

from echo_node.node import Node
from echo_node.settings import ConfigError
from echo_node.web.app import create_app
from echo_node.web.connections import HttpLimits, connection_cap, protocol_class

logger = logging.getLogger(__name__)


def uvicorn_config(node: Node, port: int | None = None) -> uvicorn.Config:
    """uvicorn settings from the node's settings (``port`` overrides http_port, 0 = any)."""
    settings = node.settings
    certificate, key = settings.tls_certificate, settings.tls_private_key
    if bool(certificate) != bool(key):
        raise ConfigError("tls_certificate and tls_private_key must be set together")
    limits = HttpLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_connections=connection_cap(settings.http_max_connections, settings.max_associations),
    )
    return uvicorn.Config(
        create_app(node),
        host=settings.bind,
        port=settings.http_port if port is None else port,
        ssl_certfile=certificate or None,
        ssl_keyfile=key or None,
        # uvicorn's access log prints query strings, and QIDO queries hold patient names.
        access_log=False,
        log_config=None,
        server_header=False,
        http=protocol_class(limits),
    )


def run_http(node: Node, should_stop: threading.Event, port: int | None = None) -> None:
    """Serve until ``should_stop`` is set; blocks (run it in its own thread beside the SCP)."""
    server = uvicorn.Server(uvicorn_config(node, port))

    def watch() -> None:
        should_stop.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="http-stop", daemon=True).start()
    logger.info(
        "DICOMweb service starting",
        extra={"bind": node.settings.bind, "port": server.config.port},
    )
    server.run()
