"""TLS: with a certificate and key configured, the service speaks HTTPS only."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import httpx
import pytest

from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.server import run_http
from tests.conftest import free_port
from tests.pki import self_signed
from tests.test_web_support import settings_env, wait_for_port


def test_https_with_configured_certificate(tmp_path: Path) -> None:
    certificate, key = self_signed(tmp_path, "node")
    port = free_port()
    env = settings_env(
        tmp_path / "data",
        port,
        tls_certificate=str(certificate),
        tls_private_key=str(key),
        anonymous_loopback_read="true",
    )
    node = open_node(load_settings(environ=env))
    stop = threading.Event()
    thread = threading.Thread(target=run_http, args=(node, stop), daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        url = f"127.0.0.1:{port}/dicom-web/studies"
        answer = httpx.get(
            f"https://{url}", verify=ssl.create_default_context(cafile=str(certificate))
        )
        assert answer.status_code == 200 and answer.json() == []
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{url}", timeout=5)
    finally:
        stop.set()
        thread.join(30)
