"""C-STORE over DICOM TLS to Orthanc: delivered with the right certificates, refused without."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pydicom import dcmread

from echo_node.export.deliver import deliver_pass
from tests.orthanc import orthanc_factory  # noqa: F401
from tests.pki import self_signed
from tests.test_export_support import PLAIN_FILE, deliveries, export_node, make_results


def test_cstore_over_tls(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pki = tmp_path / "pki"
    pacs_cert, pacs_key = self_signed(pki, "pacs")
    node_cert, node_key = self_signed(pki, "node")
    pacs = orthanc_factory(
        extra_config={
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(pacs_cert),
            "DicomTlsPrivateKey": str(pacs_key),
            "DicomTlsTrustedCertificates": str(node_cert),
            "DicomTlsRemoteCertificateRequired": True,
        }
    ).start()
    plain = pacs.dimse_destination("good")
    good = plain.model_copy(
        update={
            "tls": True,
            "tls_ca_file": str(pacs_cert),
            "tls_certificate": str(node_cert),
            "tls_private_key": str(node_key),
        }
    )
    # Does not trust the PACS's certificate.
    untrusting = good.model_copy(update={"name": "untrusting", "tls_ca_file": str(node_cert)})
    # Trusts the PACS but shows no client certificate, which this PACS requires.
    anonymous = good.model_copy(
        update={"name": "anonymous", "tls_certificate": None, "tls_private_key": None}
    )
    no_tls = plain.model_copy(update={"name": "no-tls"})
    node = export_node(
        tmp_path / "data",
        [untrusting, anonymous, no_tls],
        retry_backoff_s="0",
        network_timeout_s="5",
    )
    (result,) = make_results(node, tmp_path, [PLAIN_FILE])

    reports = deliver_pass(node, "w1")
    assert {r.destination: r.state for r in reports} == dict.fromkeys(
        ("untrusting", "anonymous", "no-tls"), "pending"
    )
    errors = {row.destination: row.last_error or "" for row in deliveries(node)}
    assert "could not be reached over TLS" in errors["untrusting"]
    # The PACS closes the connection on a client without (TLS, a certificate).
    assert errors["anonymous"].startswith("anonymous aborted the association")
    assert errors["no-tls"].startswith("no-tls aborted the association")
    assert pacs.instances() == []

    node = export_node(tmp_path / "data", [good])
    (sent,) = make_results(node, tmp_path, [PLAIN_FILE], study_uid=result.study_instance_uid)
    reports = [r for r in deliver_pass(node, "w1") if r.destination == "good"]
    assert [(r.state, r.sop_instance_uid) for r in reports] == [("sent", sent.sop_instance_uid)]
    assert pacs.sop_instance_uids() == [sent.sop_instance_uid]
    assert dcmread(io.BytesIO(pacs.file(sent.sop_instance_uid))) == sent.dataset
