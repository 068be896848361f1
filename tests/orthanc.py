"""Orthanc 1.10 (Debian) as the PACS on free loopback ports, for tests that deliver to it.

Use the ``orthanc_factory`` fixture (import it into the test module)::

    from tests.orthanc import Orthanc, orthanc_factory  # noqa: F401

    def test_x(orthanc_factory):
        pacs = orthanc_factory().start()   # or (accepted_syntaxes=[...], extra_config={...})
        pacs.dimse_destination("pacs")            # a settings Destination for C-STORE
        pacs.dicomweb_destination("web")          # ... for STOW-RS
        pacs.instances()                          # Orthanc's /instances?expand (list of dicts)
        pacs.file(sop_instance_uid)               # the stored Part 10 bytes

Ports are chosen when the object is made, so a test can configure a destination before the
server is up (``start()`` later, ``stop()`` and ``start()`` again keep ports and storage).
Every Orthanc the factory made is killed after the test (its storage is temporary).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from echo_node.settings import Destination
from tests.conftest import free_port, require_tool

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    workdir: Path
    aet: str = "ORTHANC"
    # None = Orthanc's default (every transfer syntax); else "AcceptedTransferSyntaxes" (≥ 1.9).
    accepted_syntaxes: list[str] | None = None
    # More configuration keys, e.g. the DicomTls* options.
    extra_config: dict[str, Any] = field(default_factory=dict)
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def dimse_destination(self, name: str = "pacs") -> Destination:
        return Destination(
            name=name, kind="dimse", ae_title=self.aet, host="127.0.0.1", port=self.dicom_port
        )

    def dicomweb_destination(self, name: str = "web", token: str | None = None) -> Destination:
        return Destination(name=name, kind="dicomweb", url=f"{self.url}/dicom-web", token=token)

    def _config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "ECHO_NODE_TEST_PACS",
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        if self.accepted_syntaxes is not None:
            config["AcceptedTransferSyntaxes"] = self.accepted_syntaxes
        return {**config, **self.extra_config}

    def start(self, timeout: float = 60) -> Orthanc:
        if not DICOMWEB_PLUGIN.exists():
            raise RuntimeError(f"{DICOMWEB_PLUGIN} is missing: install orthanc-dicomweb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self._config()))
        log = (self.workdir / "orthanc.log").open("ab")
        self.process = subprocess.Popen(
            [require_tool("Orthanc"), str(config_path)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/system", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        """Stop at once: for teardown, where the storage is thrown away (SIGTERM takes ~3.5 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        path = self.workdir / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def instances(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/instances", params={"expand": "1"}, timeout=30)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def sop_instance_uids(self) -> list[str]:
        return [instance["MainDicomTags"]["SOPInstanceUID"] for instance in self.instances()]

    def file(self, sop_instance_uid: str) -> bytes:
        (found,) = [
            instance
            for instance in self.instances()
            if instance["MainDicomTags"]["SOPInstanceUID"] == sop_instance_uid
        ]
        response = httpx.get(f"{self.url}/instances/{found['ID']}/file", timeout=30)
        response.raise_for_status()
        return response.content


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Any]:
    """``orthanc_factory(**kwargs) -> Orthanc`` (not started); all are stopped afterwards."""
    made: list[Orthanc] = []

    def make(**kwargs: Any) -> Orthanc:
        server = Orthanc(workdir=tmp_path / f"orthanc{len(made)}", **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()
