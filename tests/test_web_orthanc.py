"""Orthanc (an independent DICOMweb implementation) pulls a study from the node."""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import free_port, require_tool, us_file
from tests.test_web_support import WebNode, web  # noqa: F401

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@pytest.fixture
def orthanc(web: WebNode, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """Orthanc on free ports with the node configured as DICOMweb server "node"."""
    if not DICOMWEB_PLUGIN.exists():
        raise RuntimeError(f"{DICOMWEB_PLUGIN} is missing: install orthanc-dicomweb")
    http_port = free_port()
    storage = tmp_path / "orthanc"
    storage.mkdir()
    config = {
        "Name": "ORTHANC_TEST",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "Servers": {
                "node": {
                    "Url": f"{web.url}/",
                    "HttpHeaders": {"Authorization": f"Bearer {web.read_token}"},
                }
            },
        },
    }
    config_path = tmp_path / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = (tmp_path / "orthanc.log").open("wb")
    process = subprocess.Popen([require_tool("Orthanc"), str(config_path)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "orthanc.log").read_text(errors="replace"))
            try:
                if httpx.get(f"{url}/system", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.peer
def test_orthanc_retrieves_a_study(web: WebNode, orthanc: str, tmp_path: Path) -> None:  # noqa: F811
    originals = []
    study = generate_uid()
    for name in ("examples_ybr_color.dcm", "examples_rgb_color.dcm"):
        dataset = dcmread(us_file(name))
        dataset.StudyInstanceUID = study
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        originals.append(dataset)
    DICOMwebClient(web.url, headers=web.auth()).store_instances(originals)

    # Orthanc's own QIDO client sees the study on the node...
    found = httpx.post(
        f"{orthanc}/dicom-web/servers/node/get",
        json={"Uri": "/studies", "Arguments": {"StudyInstanceUID": study}},
        timeout=60,
    )
    assert found.status_code == 200, found.text
    assert study in found.text
    # ...and its WADO-RS client pulls the whole study.
    pulled = httpx.post(
        f"{orthanc}/dicom-web/servers/node/retrieve",
        json={"Resources": [{"Study": study}]},
        timeout=120,
    )
    assert pulled.status_code == 200, pulled.text
    instances = httpx.get(f"{orthanc}/instances", params={"expand": "1"}).json()
    assert len(instances) == 2
    for instance in instances:
        data = httpx.get(f"{orthanc}/instances/{instance['ID']}/file").content
        received = dcmread(io.BytesIO(data))
        (original,) = [o for o in originals if o.SOPInstanceUID == received.SOPInstanceUID]
        assert received.StudyInstanceUID == study
        assert received.PixelData == original.PixelData
        assert received == original
