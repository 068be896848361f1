"""Bad input over DIMSE: a failure status, a quarantine entry with the reason, and a node
that keeps serving.

dcmtk's storescu refuses to send files it cannot parse, so these damaged instances are sent
by a pynetdicom requestor that streams a file's bytes as they are (chunked send).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import UltrasoundMultiFrameImageStorage  # type: ignore[attr-defined]

from tests.conftest import NodeProcess, echoscu, us_file

SOURCE = "examples_ybr_color.dcm"  # US multi-frame, JPEG baseline


@pytest.fixture
def raw_sending() -> Iterator[None]:
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = previous


def send_raw(port: int, path: Path) -> tuple[int, str]:
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(
        UltrasoundMultiFrameImageStorage, [JPEGBaseline8Bit, ExplicitVRLittleEndian]
    )
    assoc = ae.associate("127.0.0.1", port, ae_title="ECHONODE")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
    finally:
        assoc.release()
    return int(status.Status), str(status.get("ErrorComment", ""))


def damaged(tmp_path: Path, kind: str) -> Path:
    source = us_file(SOURCE)
    path = tmp_path / f"{kind}.dcm"
    if kind == "truncated":
        data = source.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
        return path
    dataset = dcmread(source)
    if kind == "no_sop_instance_uid":
        del dataset.SOPInstanceUID
        # The command still carries a SOP Instance UID (from the file meta).
        dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    elif kind == "escaping_uid":
        dataset.StudyInstanceUID = "1.2.3/../../../etc"
    elif kind == "long_uid":
        dataset.SeriesInstanceUID = "1." + "2" * 70
    elif kind == "not_dicom":
        dataset.save_as(path, enforce_file_format=True)
        meta_end = 132 + 12 + dataset.file_meta.FileMetaInformationGroupLength
        head = path.read_bytes()[:meta_end]
        path.write_bytes(head + os.urandom(50_000))
        return path
    dataset.save_as(path, enforce_file_format=False)
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", "truncated"),
        ("no_sop_instance_uid", "SOPInstanceUID is missing"),
        ("escaping_uid", "StudyInstanceUID"),
        ("long_uid", "SeriesInstanceUID"),
        ("not_dicom", ""),
    ],
)
def test_bad_instance_is_refused_quarantined_and_node_keeps_serving(
    node: NodeProcess, tmp_path: Path, raw_sending: None, kind: str, reason: str
) -> None:
    path = damaged(tmp_path, kind)
    status, comment = send_raw(node.port, path)
    assert status != 0x0000
    assert status in (0xC000, 0xA900)
    assert comment

    sidecars = list((node.data_dir / "quarantine").glob("*.json"))
    assert len(sidecars) == 1
    record = json.loads(sidecars[0].read_text())
    assert reason in record["reason"]
    assert record["peer_ae"] == "RAWSCU"
    assert record["peer_address"] == "127.0.0.1"
    assert record["bytes_received"] > 0
    kept = node.data_dir / "quarantine" / record["file"]
    assert kept.stat().st_size == record["bytes_received"]
    # Nothing of it reached the store, and nothing is left half-written.
    assert not list((node.data_dir / "instances").rglob("*.dcm"))
    assert not (node.data_dir / "etc").exists()
    assert list((node.data_dir / "tmp").iterdir()) == []

    assert echoscu(node.port)
    assert send_raw(node.port, us_file(SOURCE))[0] == 0x0000
