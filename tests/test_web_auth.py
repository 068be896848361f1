"""Bearer tokens: no token, wrong token, wrong scope, revoked; the tokens CLI; loopback reads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.server import run_http
from tests.conftest import REPO, free_port, us_file
from tests.test_web_support import WebNode, settings_env, wait_for_port, web  # noqa: F401

DICOM = 'multipart/related; type="application/dicom"; boundary=b0und'


def _body(path: Path) -> bytes:
    return (
        b"--b0und\r\nContent-Type: application/dicom\r\n\r\n"
        + path.read_bytes()
        + b"\r\n--b0und--\r\n"
    )


def test_tokens_and_scopes(web: WebNode) -> None:  # noqa: F811
    body = _body(us_file("examples_rgb_color.dcm"))
    studies = f"{web.url}/studies"

    def store(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(studies, content=body, headers={"Content-Type": DICOM, **headers})

    nothing = store({})
    assert nothing.status_code == 401 and nothing.headers["www-authenticate"].startswith("Bearer")
    assert store({"Authorization": "Bearer not-a-token"}).status_code == 401
    assert store({"Authorization": f"Basic {web.write_token}"}).status_code == 401
    read_only = store(web.auth(web.read_token))
    assert read_only.status_code == 403 and "scope" in read_only.json()["message"]
    assert httpx.get(studies, headers=web.auth(web.read_token)).json() == []  # nothing stored

    assert store(web.auth()).status_code == 200
    assert len(httpx.get(studies, headers=web.auth(web.read_token)).json()) == 1
    assert httpx.get(studies, headers=web.auth()).status_code == 200  # write includes read
    # Anonymous loopback reads are off by default.
    assert httpx.get(studies).status_code == 401


@pytest.mark.peer
def test_tokens_cli(tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(tmp_path / "data", port)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        # The CLI of this source tree (cwd first on sys.path), as `echo-node tokens ...`.
        command = [sys.executable, "-c", "from echo_node.cli import main; main()", "tokens"]
        return subprocess.run(
            [*command, *args],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cli("add", "--scope", "write", "--name", "scanner room 1")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    listing = cli("list")
    assert "scanner room 1" in listing.stdout and "active" in listing.stdout
    assert token not in listing.stdout  # only the hash is kept
    assert cli("add", "--scope", "admin").returncode == 2

    node = open_node(load_settings(environ=env))
    stop = threading.Event()
    thread = threading.Thread(target=run_http, args=(node, stop), daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/dicom-web/studies"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, headers=headers).status_code == 200
        token_id = listing.stdout.split()[0]
        assert cli("revoke", token_id).returncode == 0
        assert httpx.get(url, headers=headers).status_code == 401
        assert cli("revoke", token_id).returncode == 1
    finally:
        stop.set()
        thread.join(30)


def test_anonymous_loopback_read(tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(tmp_path / "data", port, anonymous_loopback_read="true")
    node = open_node(load_settings(environ=env))
    stop = threading.Event()
    thread = threading.Thread(target=run_http, args=(node, stop), daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/dicom-web/studies"
        assert httpx.get(url).status_code == 200
        path = us_file("examples_rgb_color.dcm")
        refused = httpx.post(url, content=_body(path), headers={"Content-Type": DICOM})
        assert refused.status_code == 401  # writes always need a token
        sop = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert sop not in httpx.get(f"http://127.0.0.1:{port}/dicom-web/instances").text
    finally:
        stop.set()
        thread.join(30)
