"""Prometheus metrics at GET /metrics: the real node with two ingest processes fed by storescu,
scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydicom import dcmread

from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web.app import create_app
from echo_node.web.auth import add_token
from tests.conftest import NodeProcess, free_port, us_file
from tests.dicom_files import reuid_copies, storescu
from tests.test_web_support import wait_for_port

PATIENT_NAME, PATIENT_ID = "METRICS^MUST^NOTSHOW", "PID-METRICS-0815"


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(found: Iterable[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in found if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching)


def test_counts_from_every_ingest_process_and_no_patient_data(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    http_port = free_port()
    # The metrics directory is made under TMPDIR, so the test can look into it.
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    class ScratchNode(node_factory):  # type: ignore[valid-type,misc]
        @property
        def env(self) -> dict[str, str]:
            return {**super().env, "TMPDIR": str(scratch)}

    node = ScratchNode(
        tmp_path / "data",
        free_port(),
        extra_env={"http_enabled": "true", "http_port": str(http_port), "ingest_processes": "2"},
    )
    node.start()
    wait_for_port(http_port)
    # Each process creates its gauge file when it opens the node: wait for the second one.
    (metrics_dir,) = scratch.glob("echo-node-metrics-*")
    deadline = time.monotonic() + 60
    while len(list(metrics_dir.glob("gauge_livesum_*.db"))) < 2:
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.2)

    paths = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "study", 3)
    for path in paths:
        dataset = dcmread(path)
        dataset.PatientName, dataset.PatientID = PATIENT_NAME, PATIENT_ID
        dataset.save_as(path, enforce_file_format=True)
    bad = dcmread(paths[0])
    bad.SOPInstanceUID = "1.2.3.04.5"  # a leading zero: not a valid UID, refused by the node
    bad.file_meta.MediaStorageSOPInstanceUID = bad.SOPInstanceUID
    bad_path = tmp_path / "bad.dcm"
    bad.save_as(bad_path, enforce_file_format=True)
    # One association each, so the kernel may hand them to either ingest process.
    for path in [*paths, bad_path]:
        storescu(node.port, [path])

    response = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    found = samples(text)
    received = "echo_node_instances_received_total"
    assert value(found, received, transport="dimse", outcome="stored") == 3
    assert value(found, received, transport="dimse", outcome="quarantined") == 1
    assert value(found, received, outcome="duplicate") == 0
    sizes = sum(path.stat().st_size for path in [*paths, bad_path])
    # The node's file meta differs a little from pydicom's: sizes within a few hundred bytes.
    assert abs(value(found, "echo_node_received_bytes_total", transport="dimse") - sizes) < 2000
    assert value(found, "echo_node_ingest_seconds_count", transport="dimse") == 4
    assert value(found, "echo_node_dimse_associations_active") == 0
    assert value(found, "echo_node_quarantined_files") == 1
    assert value(found, "echo_node_jobs", state="queued") == 0
    assert value(found, "echo_node_data_disk_free_bytes") > 0
    for secret in (
        PATIENT_NAME,
        PATIENT_ID,
        "METRICS",
        *(str(dcmread(p).SOPInstanceUID) for p in paths),
    ):
        assert secret not in text
    assert str(dcmread(paths[0]).StudyInstanceUID) not in text

    # Which process took which association is the kernel's choice; either way both write
    # to the one directory the scrape adds up (the sums above include them).
    assert len(list(metrics_dir.glob("gauge_livesum_*.db"))) == 2
    assert node.stop(signal.SIGTERM) == 0
    assert not metrics_dir.exists()  # a restart starts from zero


def test_metrics_can_require_a_token_or_be_off(tmp_path: Path) -> None:
    base = {"ECHO_NODE_DATA_DIR": str(tmp_path / "data"), "ECHO_NODE_METRICS_REQUIRE_TOKEN": "1"}
    node = open_node(load_settings(environ=base))
    _, token = add_token(node.sessions, "read", "prometheus")
    _, writer = add_token(node.sessions, "write", "uploader")
    client = TestClient(create_app(node))
    body = (
        b"--b0und\r\nContent-Type: application/dicom\r\n\r\n"
        + us_file("examples_ybr_color.dcm").read_bytes()
        + b"\r\n--b0und--\r\n"
    )
    stored = client.post(
        "/dicom-web/studies",
        content=body,
        headers={
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0und',
            "Authorization": f"Bearer {writer}",
        },
    )
    assert stored.status_code == 200
    assert client.get("/metrics").status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200
    found = samples(scraped.text)
    received = "echo_node_instances_received_total"
    assert value(found, received, transport="stowrs", outcome="stored") == 1
    assert value(found, received, transport="dimse") == 0
    assert value(found, "echo_node_jobs", state="done") == 0
    assert "/metrics" not in client.get("/openapi.json").text
    node.engine.dispose()

    off = open_node(load_settings(environ={**base, "ECHO_NODE_METRICS_ENABLED": "false"}))
    assert TestClient(create_app(off)).get("/metrics").status_code == 404
    off.engine.dispose()
