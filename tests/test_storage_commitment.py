"""Storage Commitment Push Model against Orthanc 1.10 as the requester (SCU).

Orthanc sends instances to the node and asks for commitment (REST ``/modalities/{id}/store``
with ``StorageCommitment`` or ``/modalities/{id}/storage-commitment``); the node's report
comes back on Orthanc's own DICOM port and Orthanc's ``/storage-commitment/{uid}`` shows it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from tests.conftest import NodeProcess, free_port, us_file
from tests.dicom_files import storescu
from tests.orthanc import Orthanc, orthanc_factory  # noqa: F401
from tests.pki import issued, self_signed

# Three real ultrasound files with distinct SOP Instance UIDs (the RLE copy shares the palette one).
FILES = ["examples_palette.dcm", "US1_J2KR.dcm", "examples_ybr_color.dcm"]
NO_SUCH_OBJECT_INSTANCE = 0x0112
PROCESSING_FAILURE = 0x0110


def _pair(
    make_orthanc: Any, node_factory: type[NodeProcess], tmp_path: Path, **node_env: str
) -> tuple[Orthanc, NodeProcess]:
    """Orthanc knowing the node as modality "node", and the node knowing where Orthanc is."""
    node_port = free_port()
    pacs: Orthanc = make_orthanc(
        extra_config={"DicomModalities": {"node": ["ECHONODE", "127.0.0.1", node_port]}}
    )
    env = {"commitment_peers": f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}", **node_env}
    node = node_factory(tmp_path / "data", node_port, extra_env=env).start()
    return pacs.start(), node


def _upload(pacs: Orthanc, names: list[str]) -> dict[str, str]:
    """Orthanc ID -> SOP Instance UID of each file uploaded to Orthanc (not to the node)."""
    ids = {}
    for name in names:
        response = httpx.post(
            f"{pacs.url}/instances", content=us_file(name).read_bytes(), timeout=30
        )
        response.raise_for_status()
        ids[response.json()["ID"]] = str(dcmread(us_file(name)).SOPInstanceUID)
    return ids


def _store_with_commitment(pacs: Orthanc, orthanc_ids: list[str]) -> str:
    response = httpx.post(
        f"{pacs.url}/modalities/node/store",
        json={"Resources": orthanc_ids, "StorageCommitment": True, "Synchronous": True},
        timeout=60,
    )
    response.raise_for_status()
    body = response.json()
    assert body["FailedInstancesCount"] == 0, body
    return str(body["StorageCommitmentTransactionUID"])


def _request_commitment(pacs: Orthanc, orthanc_ids: list[str]) -> str:
    response = httpx.post(
        f"{pacs.url}/modalities/node/storage-commitment",
        json={"Resources": orthanc_ids},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["ID"])


def _report(pacs: Orthanc, transaction_uid: str, timeout: float = 20) -> dict[str, Any]:
    """Orthanc's view of the transaction once the node's report has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        report: dict[str, Any] = httpx.get(
            f"{pacs.url}/storage-commitment/{transaction_uid}", timeout=10
        ).json()
        if report["Status"] != "Pending":
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"no report within {timeout} s: {report}")
        time.sleep(0.2)


def _commitment_rows(
    data_dir: Path, settled: bool = True
) -> list[tuple[str, str, int | None, int | None]]:
    """The node's commitment rows, once none is pending if ``settled`` (the node records
    "sent" just after Orthanc's N-EVENT-REPORT-RSP, so a moment after Orthanc shows it)."""
    deadline = time.monotonic() + (10 if settled else 0)
    while True:
        with sqlite3.connect(data_dir / "echo-node.db") as db:
            rows: list[tuple[str, str, int | None, int | None]] = db.execute(
                "SELECT transaction_uid, state, event_type, failed_count FROM commitments"
            ).fetchall()
        if all(state != "pending" for _, state, _, _ in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _stored_path(data_dir: Path, sop_instance_uid: str) -> Path:
    with sqlite3.connect(data_dir / "echo-node.db") as db:
        (relative,) = db.execute(
            "SELECT path FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)
        ).fetchone()
    return data_dir / relative


def test_orthanc_store_with_commitment_is_reported_committed(
    orthanc_factory: Any,  # noqa: F811
    node_factory: type[NodeProcess],
    tmp_path: Path,
) -> None:
    pacs, node = _pair(orthanc_factory, node_factory, tmp_path)
    sent = _upload(pacs, FILES)

    transaction_uid = _store_with_commitment(pacs, list(sent))
    report = _report(pacs, transaction_uid)

    assert report["Status"] == "Success", report
    assert report["Failures"] == []
    assert sorted(item["SOPInstanceUID"] for item in report["Success"]) == sorted(sent.values())
    assert _commitment_rows(node.data_dir) == [(transaction_uid, "sent", 1, 0)]
    log = node.log()
    assert "storage commitment report sent" in log and transaction_uid in log
    status = json.loads(node.cli("status", "--json").stdout)
    assert status["commitment_reports"] == {"pending": 0, "sent": 1, "failed": 0}


def test_only_intact_files_the_node_holds_are_committed(
    orthanc_factory: Any,  # noqa: F811
    node_factory: type[NodeProcess],
    tmp_path: Path,
) -> None:
    pacs, node = _pair(orthanc_factory, node_factory, tmp_path)
    stored = _upload(pacs, FILES)
    never_sent = _upload(pacs, ["JPGLosslessP14SV1_1s_1f_8b.dcm"])
    first = _report(pacs, _store_with_commitment(pacs, list(stored)))
    assert first["Status"] == "Success", first
    intact, removed, altered = stored.values()
    (never_sent_uid,) = never_sent.values()
    _stored_path(node.data_dir, removed).unlink()
    altered_path = _stored_path(node.data_dir, altered)
    data = bytearray(altered_path.read_bytes())
    data[-1] ^= 0xFF  # one bit of pixel data: still DICOM, no longer what was received
    altered_path.write_bytes(bytes(data))

    report = _report(pacs, _request_commitment(pacs, [*stored, *never_sent]))

    assert report["Status"] == "Failure", report
    assert [item["SOPInstanceUID"] for item in report["Success"]] == [intact]
    reasons = {item["SOPInstanceUID"]: item["FailureReason"] for item in report["Failures"]}
    assert reasons == {
        removed: NO_SUCH_OBJECT_INSTANCE,
        altered: PROCESSING_FAILURE,
        never_sent_uid: NO_SUCH_OBJECT_INSTANCE,
    }


def test_report_survives_a_restart_and_reaches_the_requester_later(
    orthanc_factory: Any,  # noqa: F811
    node_factory: type[NodeProcess],
    tmp_path: Path,
) -> None:
    """The first node cannot reach Orthanc (wrong port): the request stays pending in the
    database; a restarted node with the right address sends the report."""
    dead_port = free_port()
    pacs, node = _pair(
        orthanc_factory,
        node_factory,
        tmp_path,
        commitment_peers=f"ORTHANC@127.0.0.1:{dead_port}",
        retry_backoff_s="2",
    )
    sent = _upload(pacs, FILES[:1])
    transaction_uid = _store_with_commitment(pacs, list(sent))
    deadline = time.monotonic() + 10
    while "could not be reached" not in node.log():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    assert node.stop() == 0
    assert _commitment_rows(node.data_dir, settled=False)[0][:2] == (transaction_uid, "pending")
    status = httpx.get(f"{pacs.url}/storage-commitment/{transaction_uid}", timeout=10).json()
    assert status["Status"] == "Pending"

    restarted = node_factory(
        node.data_dir,
        node.port,
        extra_env={
            "commitment_peers": f"ORTHANC@127.0.0.1:{pacs.dicom_port}",
            "sweep_interval_s": "0.5",
        },
    ).start()

    report = _report(pacs, transaction_uid)
    assert report["Status"] == "Success", report
    assert [item["SOPInstanceUID"] for item in report["Success"]] == list(sent.values())
    assert _commitment_rows(restarted.data_dir) == [(transaction_uid, "sent", 1, 0)]


def _action(transaction_uid: str, references: list[tuple[str, str]]) -> Dataset:
    action = Dataset()
    action.TransactionUID = transaction_uid
    action.ReferencedSOPSequence = []
    for sop_class_uid, sop_instance_uid in references:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class_uid
        item.ReferencedSOPInstanceUID = sop_instance_uid
        action.ReferencedSOPSequence.append(item)
    return action


def test_requester_without_an_address_gets_the_report_on_its_open_association(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    """pynetdicom as the SCU: Orthanc always releases the association after N-ACTION, so it
    cannot show the node answering on the same association. With no commitment_peers entry
    the node reports there; when the requester refuses that report, the retry has nowhere
    to go and the node logs an error naming the AE title and the Transaction UID."""
    node = node_factory(
        tmp_path / "data",
        free_port(),
        extra_env={"retry_backoff_s": "0.2", "sweep_interval_s": "0.5"},
    ).start()
    source = us_file("US1_J2KR.dcm")
    assert storescu(node.port, [source]).acknowledged == [source]
    held = dcmread(source, stop_before_pixels=True)
    unknown = "1.2.826.0.1.3680043.8.498.1"

    reports: list[tuple[int, Dataset]] = []
    arrived = threading.Event()
    answer = {"status": 0x0000}

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.append((int(event.event_type), event.event_information))
        arrived.set()
        return answer["status"], None

    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(StorageCommitmentPushModel, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="ECHONODE",
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    assert assoc.is_established
    try:
        references = [(held.SOPClassUID, held.SOPInstanceUID), (held.SOPClassUID, unknown)]
        status, _ = assoc.send_n_action(
            _action("2.25.1001", references),
            1,
            StorageCommitmentPushModel,
            StorageCommitmentPushModelInstance,
        )
        assert status.Status == 0x0000
        assert arrived.wait(10)
        event_type, information = reports[0]
        assert event_type == 2
        assert information.TransactionUID == "2.25.1001"
        assert [i.ReferencedSOPInstanceUID for i in information.ReferencedSOPSequence] == [
            held.SOPInstanceUID
        ]
        (failed,) = information.FailedSOPSequence
        assert (failed.ReferencedSOPInstanceUID, failed.FailureReason) == (
            unknown,
            NO_SUCH_OBJECT_INSTANCE,
        )

        answer["status"] = 0x0110  # this time the requester does not take the report
        arrived.clear()
        status, _ = assoc.send_n_action(
            _action("2.25.1002", references[:1]),
            1,
            StorageCommitmentPushModel,
            StorageCommitmentPushModelInstance,
        )
        assert status.Status == 0x0000
        assert arrived.wait(10)
    finally:
        assoc.release()
    deadline = time.monotonic() + 10
    while "no address for the storage commitment requester" not in node.log():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    line = next(line for line in node.log().splitlines() if "no address for the storage" in line)
    assert "MODALITY1" in line and "2.25.1002" in line
    with sqlite3.connect(node.data_dir / "echo-node.db") as db:
        states = dict(db.execute("SELECT transaction_uid, state FROM commitments").fetchall())
    assert states == {"2.25.1001": "sent", "2.25.1002": "pending"}


def test_store_and_report_over_dicom_tls(
    orthanc_factory: Any,  # noqa: F811
    node_factory: type[NodeProcess],
    tmp_path: Path,
) -> None:
    """Orthanc stores and asks for commitment on the node's TLS port, both sides showing
    certificates the site CA signed; the report goes back over TLS because Orthanc is a dimse
    destination with tls = true (its DICOM port speaks nothing else)."""
    pki = tmp_path / "pki"
    site = self_signed(pki, "site-ca")
    (pacs_cert, pacs_key), (node_cert, node_key) = (
        issued(pki, "pacs", site),
        issued(pki, "node", site),
    )
    tls_port = free_port()
    pacs: Orthanc = orthanc_factory(
        extra_config={
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(pacs_cert),
            "DicomTlsPrivateKey": str(pacs_key),
            "DicomTlsTrustedCertificates": str(site[0]),
            "DicomTlsRemoteCertificateRequired": True,
            "DicomModalities": {
                "node": {
                    "AET": "ECHONODE",
                    "Host": "127.0.0.1",
                    "Port": tls_port,
                    "UseDicomTls": True,
                }
            },
        }
    )
    client = {
        "tls_ca_file": str(site[0]),
        "tls_certificate": str(node_cert),
        "tls_private_key": str(node_key),
    }
    destination = {**pacs.dimse_destination().model_dump(exclude_none=True), "tls": True, **client}
    node = node_factory(
        tmp_path / "data",
        tls_port,
        extra_env={
            "dimse_port": "0",
            "dimse_tls_port": str(tls_port),
            "dimse_tls_certificate": str(node_cert),
            "dimse_tls_private_key": str(node_key),
            "dimse_tls_ca_file": str(site[0]),
            "dimse_tls_require_client_cert": "true",
            "destinations": json.dumps([destination]),
        },
    ).start()
    pacs.start()
    sent = _upload(pacs, FILES[:1])

    report = _report(pacs, _store_with_commitment(pacs, list(sent)))

    assert report["Status"] == "Success", report
    assert [item["SOPInstanceUID"] for item in report["Success"]] == list(sent.values())
    assert _commitment_rows(node.data_dir)[0][1:] == ("sent", 1, 0)
