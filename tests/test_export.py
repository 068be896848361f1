"""Delivering results to a real PACS (Orthanc 1.10): C-STORE, STOW-RS, JPEG fallback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread

from echo_node.export.deliver import deliver_due, deliver_pass
from echo_node.export.queue import queue_deliveries
from echo_node.settings import Destination
from storage.models import Output
from tests.orthanc import orthanc_factory  # noqa: F401
from tests.test_export_support import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    JPEG_BASELINE,
    JPEG_FILE,
    PLAIN_FILE,
    deliveries,
    export_node,
    make_results,
)


def test_cstore_delivers_each_file_as_stored_once(
    orthanc_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = orthanc_factory().start()
    node = export_node(tmp_path / "data", [pacs.dimse_destination("pacs")])
    results = make_results(node, tmp_path, [JPEG_FILE, PLAIN_FILE])

    assert deliver_due(node, "w1") == 2
    rows = deliveries(node)
    assert [(r.state, r.attempts, r.last_error) for r in rows] == [("sent", 1, None)] * 2
    assert all(r.sent_at is not None and r.lease_until is None for r in rows)
    assert sorted(pacs.sop_instance_uids()) == sorted(r.sop_instance_uid for r in results)
    for result in results:
        received = dcmread(io.BytesIO(pacs.file(result.sop_instance_uid)))
        # The JPEG went as JPEG (Orthanc accepts every syntax by default), not transcoded.
        assert received.file_meta.TransferSyntaxUID == result.dataset.file_meta.TransferSyntaxUID
        assert received == result.dataset

    # Sent is final: later passes claim nothing and Orthanc holds one copy of each.
    assert deliver_due(node, "w1") == 0
    assert deliver_due(node, "w2") == 0
    assert len(pacs.instances()) == 2
    assert [r.attempts for r in deliveries(node)] == [1, 1]


def test_stow_rs_delivers_to_dicomweb(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory().start()
    node = export_node(tmp_path / "data", [pacs.dicomweb_destination("web")])
    results = make_results(node, tmp_path, [JPEG_FILE, PLAIN_FILE])

    reports = deliver_pass(node, "w1")
    assert [(r.state, r.message) for r in reports] == [("sent", "")] * 2
    assert sorted(pacs.sop_instance_uids()) == sorted(r.sop_instance_uid for r in results)
    for result in results:
        received = dcmread(io.BytesIO(pacs.file(result.sop_instance_uid)))
        assert received == result.dataset
    assert deliver_due(node, "w1") == 0
    assert [(r.state, r.attempts) for r in deliveries(node)] == [("sent", 1)] * 2


def test_stow_rs_client_error_is_permanent(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory().start()
    wrong = pacs.dicomweb_destination("web").model_copy(update={"url": f"{pacs.url}/no-such"})
    node = export_node(tmp_path / "data", [wrong], retry_backoff_s="0")
    make_results(node, tmp_path, [PLAIN_FILE])

    (report,) = deliver_pass(node, "w1")
    assert report.state == "failed"
    (row,) = deliveries(node)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error is not None and "HTTP 404" in row.last_error
    assert deliver_due(node, "w1") == 0
    assert pacs.instances() == []


def test_jpeg_goes_decompressed_to_a_peer_that_refuses_jpeg(
    orthanc_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = orthanc_factory(accepted_syntaxes=[EXPLICIT_LE, IMPLICIT_LE]).start()
    node = export_node(tmp_path / "data", [pacs.dimse_destination("pacs")])
    (result,) = make_results(node, tmp_path, [JPEG_FILE])
    assert result.dataset.file_meta.TransferSyntaxUID == JPEG_BASELINE

    assert deliver_due(node, "w1") == 1
    (row,) = deliveries(node)
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)
    received = dcmread(io.BytesIO(pacs.file(result.sop_instance_uid)))
    assert received.file_meta.TransferSyntaxUID in (EXPLICIT_LE, IMPLICIT_LE)
    assert received.SOPInstanceUID == result.sop_instance_uid
    assert received.StudyInstanceUID == result.study_instance_uid
    assert int(received.NumberOfFrames) == int(result.dataset.NumberOfFrames)
    # The pixels are what the JPEG decodes to (pydicom gives RGB for YBR JPEG).
    assert received.PhotometricInterpretation == "RGB"
    assert np.array_equal(received.pixel_array, result.dataset.pixel_array)


def test_uncompressed_file_to_a_peer_that_refuses_jpeg(
    orthanc_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = orthanc_factory(accepted_syntaxes=[IMPLICIT_LE]).start()
    node = export_node(tmp_path / "data", [pacs.dimse_destination("pacs")])
    (result,) = make_results(node, tmp_path, [PLAIN_FILE])
    assert deliver_due(node, "w1") == 1
    assert deliveries(node)[0].state == "sent"
    received = dcmread(io.BytesIO(pacs.file(result.sop_instance_uid)))
    assert received.file_meta.TransferSyntaxUID == IMPLICIT_LE
    assert received.PixelData == result.dataset.PixelData


def test_queueing_is_idempotent_per_output_and_destination(tmp_path: Path) -> None:
    destinations = [
        Destination(name="a", kind="dicomweb", url="http://127.0.0.1:9/dicom-web"),
        Destination(name="b", kind="dimse", ae_title="B", host="127.0.0.1", port=9),
    ]
    node = export_node(tmp_path / "data", destinations)
    (result,) = make_results(node, tmp_path, [PLAIN_FILE])  # queues both once
    with node.sessions.begin() as session:
        output = session.get(Output, result.output_id)
        assert output is not None
        queue_deliveries(session, output, destinations)
        queue_deliveries(session, output, ["a", "c"])
    rows = deliveries(node)
    assert sorted((r.destination, r.state, r.attempts) for r in rows) == [
        ("a", "pending", 0),
        ("b", "pending", 0),
        ("c", "pending", 0),
    ]
