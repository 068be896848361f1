"""DICOM TLS on the SCP (PS3.15 B.1) against dcmtk's echoscu and storescu with +tls."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from echo_node.dimse.tls import server_context
from echo_node.settings import ConfigError, load_settings
from tests.conftest import NodeProcess, echoscu, free_port, require_tool, us_file
from tests.dicom_files import StoreRun, reuid_copies, storescu
from tests.pki import KeyPair, issued, self_signed
from tests.test_ingest_dimse import rows


def _trusting(ca: KeyPair, client: KeyPair | None = None) -> list[str]:
    """dcmtk flags: check the node's certificate against ``ca``; show ``client`` if given."""
    shown = ["+tls", str(client[1]), str(client[0])] if client else ["+tla"]
    return [*shown, "+cf", str(ca[0])]


def _tls_node(
    node_factory: type[NodeProcess], tmp_path: Path, node_pair: KeyPair
) -> tuple[NodeProcess, int]:
    """A node with both listeners; the TLS one presents the HTTPS pair, which it uses when
    dimse_tls_certificate is empty."""
    tls_port = free_port()
    settings = {
        "dimse_tls_port": str(tls_port),
        "tls_certificate": str(node_pair[0]),
        "tls_private_key": str(node_pair[1]),
    }
    return node_factory(tmp_path / "data", free_port(), settings), tls_port


def test_storescu_over_tls_stores_the_bytes_the_clear_port_does(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    site = self_signed(tmp_path / "pki", "site-ca")
    node, tls_port = _tls_node(node_factory, tmp_path, issued(tmp_path / "pki", "node", site))
    node.start()
    source = us_file("examples_palette.dcm")

    assert storescu(node.port, [source]).acknowledged == [source]  # the clear listener
    run = storescu(tls_port, [source], options=_trusting(site))
    assert run.acknowledged == [source], run.output
    path, _, version = rows(node.data_dir)[dcmread(source).SOPInstanceUID]
    # Other bytes under the same UID would make version 2: the TLS path stores the very bytes
    # the clear one does (storescu re-encodes sequence lengths, so not the file's own).
    assert version == 1
    assert dcmread(node.data_dir / path) == dcmread(source)

    # A peer that connects and stays silent holds its own thread, not the listener.
    with socket.create_connection(("127.0.0.1", tls_port)):
        assert echoscu(tls_port, options=_trusting(site))
    assert not echoscu(tls_port)  # DICOM in the clear to the TLS port
    assert echoscu(tls_port, options=_trusting(site))
    assert echoscu(node.port)  # the clear listener alongside
    assert not echoscu(node.port, options=_trusting(site))
    assert "TLS handshake refused" in node.log()


def test_mutual_tls_only_admits_certificates_the_site_ca_signed(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    site, foreign = self_signed(pki, "site-ca"), self_signed(pki, "foreign-ca")
    node_cert, node_key = issued(pki, "node", site)
    scanner, stranger = issued(pki, "scanner", site), issued(pki, "stranger", foreign)
    tls_port = free_port()
    settings = {
        "dimse_port": "0",  # TLS only
        "dimse_tls_port": str(tls_port),
        # Its own pair: HTTPS (off here) could use another certificate.
        "dimse_tls_certificate": str(node_cert),
        "dimse_tls_private_key": str(node_key),
        "dimse_tls_ca_file": str(site[0]),
        "dimse_tls_require_client_cert": "true",
        "allowed_peers": "SCANNER",
    }
    node = node_factory(tmp_path / "data", tls_port, settings).start()

    assert echoscu(tls_port, "SCANNER", options=_trusting(site, scanner))
    assert not echoscu(tls_port, "SCANNER", options=_trusting(site))  # no certificate
    assert not echoscu(tls_port, "SCANNER", options=_trusting(site, stranger))
    assert node.log().count("TLS handshake refused") == 2
    # A good certificate does not bypass the AE title allowlist.
    assert not echoscu(tls_port, "OTHER", options=_trusting(site, scanner))
    assert "peer not in allowed_peers" in node.log()
    assert echoscu(tls_port, "SCANNER", options=_trusting(site, scanner))
    assert '"DIMSE service listening"' not in node.log()  # no clear listener


def test_sigterm_drains_tls_stores_with_two_ingest_processes(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    site = self_signed(tmp_path / "pki", "site-ca")
    node, tls_port = _tls_node(node_factory, tmp_path, issued(tmp_path / "pki", "node", site))
    node.start("--ingest-processes", "2")
    deadline = time.monotonic() + 60
    while node.log().count("DIMSE service listening (TLS)") < 2:  # the child too
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    files = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "send", 150)
    result: list[StoreRun] = []
    sender = threading.Thread(
        target=lambda: result.append(storescu(tls_port, files, options=_trusting(site)))
    )
    sender.start()
    while len(rows(node.data_dir) if (node.data_dir / "echo-node.db").exists() else {}) < 8:
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.05)

    assert node.stop(signal.SIGTERM) == 0
    sender.join(60)
    indexed = rows(node.data_dir)
    assert 8 <= len(result[0].acknowledged) < 150, "the signal should land part way"
    for path in result[0].acknowledged:
        assert dcmread(path, stop_before_pixels=True).SOPInstanceUID in indexed
    assert node.log().count("DIMSE service stopped") == 2


@pytest.mark.peer
def test_unusable_certificate_files_stop_serve_naming_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    node = NodeProcess(
        tmp_path / "data",
        free_port(),
        {
            "dimse_tls_port": str(free_port()),
            "dimse_tls_certificate": str(missing),
            "dimse_tls_private_key": str(missing),
        },
    )
    result = node.cli("serve")
    assert result.returncode == 2
    assert f"dimse_tls_certificate ({missing}) cannot be read" in result.stderr


def test_tls_settings_and_files_that_cannot_work_are_config_errors(tmp_path: Path) -> None:
    site = self_signed(tmp_path, "site-ca")
    cert, key = issued(tmp_path, "node", site)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        subprocess.run(
            [require_tool("openssl"), "rsa", "-in", str(key), "-aes256", "-passout", "pass:x"],
            check=True,
            capture_output=True,
        ).stdout
    )

    def context(**values: str) -> None:
        env = {f"ECHO_NODE_{name.upper()}": value for name, value in values.items()}
        server_context(load_settings(environ={"ECHO_NODE_DIMSE_TLS_PORT": "2762", **env}))

    with pytest.raises(ConfigError, match=r"dimse_tls_private_key .* is encrypted"):
        context(dimse_tls_certificate=str(cert), dimse_tls_private_key=str(encrypted))
    with pytest.raises(ConfigError, match="not a PEM certificate chain"):
        context(dimse_tls_certificate=str(key), dimse_tls_private_key=str(key))
    with pytest.raises(ConfigError, match=r"dimse_tls_ca_file .* holds no PEM certificate"):
        context(tls_certificate=str(cert), tls_private_key=str(key), dimse_tls_ca_file=str(key))
    with pytest.raises(ConfigError, match=r"'dimse_tls_port'.*set dimse_tls_certificate"):
        context()
    with pytest.raises(ConfigError, match=r"dimse_port = 0 .* needs a dimse_tls_port"):
        load_settings(environ={"ECHO_NODE_DIMSE_PORT": "0"})
