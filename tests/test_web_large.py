"""A 300 MB multi-frame instance through STOW-RS: the server's memory stays flat."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.auth import add_token
from tests.conftest import free_port, us_file
from tests.test_web_support import rss_growth, settings_env, web_process

TARGET_BYTES = 300 * 1024 * 1024
RSS_LIMIT_KB = 200 * 1024
BOUNDARY = "big-clip-boundary"


def _big_clip(path: Path) -> tuple[str, str, int]:
    """A native RGB clip of ~300 MB made by repeating a real frame with a changing stripe."""
    source = dcmread(us_file("examples_rgb_color.dcm"))
    frame = np.frombuffer(source.PixelData, np.uint8).reshape(source.Rows, source.Columns, 3)
    frames = TARGET_BYTES // frame.nbytes + 1
    header = source.copy()
    del header.PixelData
    header.SOPInstanceUID = generate_uid()
    header.StudyInstanceUID = generate_uid()
    header.SeriesInstanceUID = generate_uid()
    header.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
    header.NumberOfFrames = frames
    header.FrameIncrementPointer = 0x00181063
    header.FrameTime = 33.3
    header.file_meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    header.file_meta.MediaStorageSOPClassUID = header.SOPClassUID
    header.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    with path.open("wb") as out:
        out.write(buffer.getvalue())
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, frames * frame.nbytes))
        for index in range(frames):
            varied = frame.copy()
            varied[index % source.Rows, :, :] = index % 256
            out.write(varied.tobytes())
    return header.SOPInstanceUID, header.StudyInstanceUID, frames


def _body(path: Path) -> Iterator[bytes]:
    yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.mark.slow
def test_300_mb_instance_with_flat_memory(tmp_path: Path) -> None:
    clip = tmp_path / "clip.dcm"
    sop, study, frames = _big_clip(clip)
    assert clip.stat().st_size > TARGET_BYTES

    port = free_port()
    env = settings_env(tmp_path / "data", port)
    node = open_node(load_settings(environ=env))
    _, token = add_token(node.sessions, "write", "large")
    node.engine.dispose()
    with web_process(env) as process:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{port}/dicom-web"
        assert httpx.get(f"{url}/studies", headers=headers).status_code == 200  # warm up
        with rss_growth(process.pid, 0.05) as growth:
            response = httpx.post(
                f"{url}/studies",
                content=_body(clip),
                headers={
                    **headers,
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                    f"boundary={BOUNDARY}",
                },
                timeout=600,
            )
            # One frame from the middle of the stored clip, read without loading the rest.
            series = dcmread(clip, stop_before_pixels=True).SeriesInstanceUID
            frame = httpx.get(
                f"{url}/studies/{study}/series/{series}/instances/{sop}/frames/{frames // 2}",
                headers=headers,
                timeout=60,
            )
            # And the whole instance back, streamed: hashed here, never held by either side.
            retrieved = hashlib.sha256()
            with httpx.stream(
                "GET", f"{url}/studies/{study}", headers=headers, timeout=600
            ) as answer:
                assert answer.status_code == 200
                for chunk in answer.iter_bytes(1 << 20):
                    retrieved.update(chunk)
                boundary = answer.headers["content-type"].split("boundary=")[1]
        assert response.status_code == 200, response.text
        assert sop in response.text
        assert frame.status_code == 200
        assert growth[0] < RSS_LIMIT_KB, f"RSS grew by {growth[0]} kB during a 300 MB STOW-RS"
    stored = list((tmp_path / "data" / "instances").rglob(f"{sop}.*.dcm"))
    assert len(stored) == 1
    # Stored byte for byte (the clip already had the node's envelope fields, bar the meta).
    original = dcmread(clip, stop_before_pixels=True)
    kept = dcmread(stored[0], stop_before_pixels=True)
    assert kept == original
    assert _pixel_digest(stored[0]) == _pixel_digest(clip)
    # The retrieved body is the stored file inside one multipart part, byte for byte.
    expected = hashlib.sha256(
        f"--{boundary}\r\nContent-Type: application/dicom; "
        f"transfer-syntax={ExplicitVRLittleEndian}\r\n\r\n".encode()
    )
    with stored[0].open("rb") as handle:
        while chunk := handle.read(1 << 20):
            expected.update(chunk)
    expected.update(f"\r\n--{boundary}--\r\n".encode())
    assert retrieved.hexdigest() == expected.hexdigest()


def _pixel_digest(path: Path) -> str:
    """sha256 of everything after the Pixel Data tag (the last element)."""
    with path.open("rb") as handle:
        dcmread(handle, stop_before_pixels=True)
        sha = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()
