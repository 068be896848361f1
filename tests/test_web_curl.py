"""STOW-RS with curl and multipart bodies made by hand: each fault named, good parts stored."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import require_tool, us_file
from tests.test_web_support import WebNode, web  # noqa: F401

BOUNDARY = "e3b0c442-boundary"
RELATED = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def _instance(tmp: Path, name: str = "examples_rgb_color.dcm") -> Path:
    dataset = dcmread(us_file(name))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    path = tmp / f"{dataset.SOPInstanceUID}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def _part(data: bytes, content_type: str = "application/dicom") -> bytes:
    return f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"


def _curl(
    web: WebNode,  # noqa: F811
    body: bytes,
    tmp: Path,
    content_type: str = RELATED,
    path: str = "/studies",
) -> tuple[int, Any]:
    body_path = tmp / "body.bin"
    body_path.write_bytes(body)
    out = tmp / "response.json"
    result = subprocess.run(
        [
            require_tool("curl"),
            "-sS",
            "-o",
            str(out),
            "-w",
            "%{http_code}",
            "-H",
            f"Authorization: Bearer {web.write_token}",
            "-H",
            f"Content-Type: {content_type}",
            "-H",
            "Accept: application/dicom+json",
            "--data-binary",
            f"@{body_path}",
            f"{web.url}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(result.stdout), json.loads(out.read_text())


def _comments(response: dict[str, Any]) -> list[str]:
    failed = Dataset.from_json(response).get("FailedSOPSequence", [])
    return [str(item.ErrorComment) for item in failed]


def _stored(response: dict[str, Any]) -> set[str]:
    referenced = Dataset.from_json(response).get("ReferencedSOPSequence", [])
    return {str(item.ReferencedSOPInstanceUID) for item in referenced}


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_bad_parts_are_named_and_good_parts_stored(web: WebNode, tmp_path: Path) -> None:  # noqa: F811
    good, other = _instance(tmp_path), _instance(tmp_path)
    truncated = _instance(tmp_path).read_bytes()
    body = (
        _part(good.read_bytes())
        + _part(b"this is a text file, not DICOM")
        + _part(truncated[: len(truncated) // 2])
        + _part(b"{}", "application/json")
        + _part(other.read_bytes())
        + f"--{BOUNDARY}--\r\n".encode()
    )
    status, response = _curl(web, body, tmp_path)
    assert status == 202
    assert _stored(response) == {_uid(good), _uid(other)}
    comments = _comments(response)
    assert len(comments) == 3
    assert comments[0].startswith("not DICOM")
    assert comments[1].startswith("truncated")
    assert "application/json" in comments[2]
    # Refused DICOM bytes are kept in quarantine with a reason, never dropped.
    sidecars = list(web.node.store.quarantine_dir.glob("*.json"))
    reasons = sorted(json.loads(path.read_text())["reason"][:9] for path in sidecars)
    assert reasons == ["not DICOM", "truncated"]
    # Nothing is left behind in tmp/: every part was stored, quarantined or removed.
    assert not list(web.node.store.tmp.iterdir())


def test_body_cut_short_keeps_the_complete_parts(web: WebNode, tmp_path: Path) -> None:  # noqa: F811
    good, cut = _instance(tmp_path), _instance(tmp_path)
    body = _part(good.read_bytes()) + _part(cut.read_bytes())[:-5000]
    status, response = _curl(web, body, tmp_path)
    assert status == 202
    assert _stored(response) == {_uid(good)}
    assert _comments(response) == ["body ended inside this part"]


def test_malformed_requests(web: WebNode, tmp_path: Path) -> None:  # noqa: F811
    good = _instance(tmp_path).read_bytes()
    status, response = _curl(
        web, _part(good), tmp_path, 'multipart/related; type="application/dicom"'
    )
    assert status == 400 and "boundary" in response["message"]
    status, response = _curl(web, b"--other-boundary\r\n\r\n" + good, tmp_path)
    assert status == 400 and "no part found" in response["message"]
    status, response = _curl(web, good, tmp_path, "application/dicom")
    assert status == 415 and "multipart/related" in response["message"]
    status, response = _curl(web, _part(b"x")[:0] + f"--{BOUNDARY}--\r\n".encode(), tmp_path)
    assert status == 400 and "no part" in response["message"]
    # All-failed: 409 with the reasons (PS3.18 §10.5.3).
    status, response = _curl(web, _part(b"garbage") + f"--{BOUNDARY}--\r\n".encode(), tmp_path)
    assert status == 409 and _comments(response)[0].startswith("not DICOM")


def test_store_into_a_named_study(web: WebNode, tmp_path: Path) -> None:  # noqa: F811
    """POST /studies/{study}: instances of another study are refused (0xA900), kept aside."""
    good = _instance(tmp_path)
    study = str(dcmread(good, stop_before_pixels=True).StudyInstanceUID)
    closing = f"--{BOUNDARY}--\r\n".encode()
    status, response = _curl(
        web, _part(good.read_bytes()) + closing, tmp_path, path=f"/studies/{study}"
    )
    assert status == 200 and _stored(response) == {_uid(good)}
    assert Dataset.from_json(response).RetrieveURL.endswith(f"/studies/{study}")

    other = _instance(tmp_path)
    status, response = _curl(
        web, _part(other.read_bytes()) + closing, tmp_path, path="/studies/1.2.3.999"
    )
    assert status == 409
    (failed,) = Dataset.from_json(response).FailedSOPSequence
    assert failed.FailureReason == 0xA900 and failed.ReferencedSOPInstanceUID == _uid(other)
    (sidecar,) = web.node.store.quarantine_dir.glob("*.json")
    kept = json.loads(sidecar.read_text())  # quarantined through the Ingestor like any refusal
    assert kept["reason"] == "instance of another study than the request's"
    assert kept["peer_address"] == "127.0.0.1" and kept["transport"] == "stowrs"
