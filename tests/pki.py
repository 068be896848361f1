"""Throw-away certificates for TLS tests: self-signed ones and a site CA that issues others."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

KeyPair = tuple[Path, Path]  # PEM certificate, unencrypted PEM private key


def self_signed(directory: Path, name: str) -> KeyPair:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its private key."""
    return _request(directory, name, [])


def issued(directory: Path, name: str, ca: KeyPair) -> KeyPair:
    """A certificate for 127.0.0.1 that ``ca`` signed, and its private key."""
    ca_cert, ca_key = ca
    signing = ["-CA", str(ca_cert), "-CAkey", str(ca_key)]
    return _request(directory, name, [*signing, "-addext", "basicConstraints=critical,CA:FALSE"])


def _request(directory: Path, name: str, extra: list[str]) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            require_tool("openssl"), "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1", *extra,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
