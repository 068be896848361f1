"""`echo-node reprocess STUDY_UID --from NAME` against a real Orthanc as the source: C-GET and
WADO-RS bring the study back through the ingest path, C-MOVE sends it to the running node's
own SCP; the study is then queued (and processed) like any reprocess. Bad cases: an unknown
source, a study the source does not hold, a source that does not answer, a partial retrieval
(kept, not processed unless --allow-partial, never picked up by the stable-study sweep).

The source holds two phantom studies: a whole one (4 clips), and one with a fifth instance
the node refuses (an image without Pixel Data, which Orthanc keeps): 4 of 5 arrive.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from ai.phantom.study import generate_study
from echo_node.cli.importer import import_file
from echo_node.processing import run_job
from storage.models import FindingRow, Instance, Job
from tests.conftest import NodeProcess, free_port
from tests.orthanc import Orthanc
from tests.test_processing import claim_next, make_node, truth
from tests.test_web_support import serve_web

# Orthanc, dcmtk and the node as a process: peers (not in `make test-unit`).
pytestmark = [pytest.mark.peer, pytest.mark.timeout(600)]


@dataclass
class Pacs:
    orthanc: Orthanc
    node_port: int  # where Orthanc's C-MOVE finds the node (DicomModalities)
    whole: str  # Study Instance UID of the whole phantom study
    whole_dir: Path  # its phantom files and truth
    broken: str  # the study with an instance the node refuses

    def sources(self) -> str:
        orthanc = self.orthanc
        dimse = {"kind": "dimse", "ae_title": orthanc.aet, "host": "127.0.0.1"}
        return json.dumps(
            [
                {"name": "pacs-get", **dimse, "port": orthanc.dicom_port, "retrieve": "c-get"},
                {"name": "pacs-move", **dimse, "port": orthanc.dicom_port, "retrieve": "c-move"},
                {"name": "web", "kind": "dicomweb", "url": f"{orthanc.url}/dicom-web"},
                {"name": "down", **dimse, "port": free_port(), "retrieve": "c-get"},
            ]
        )


def _upload(orthanc: Orthanc, data: bytes) -> None:
    response = httpx.post(f"{orthanc.url}/instances", content=data, timeout=30)
    response.raise_for_status()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    root = tmp_path_factory.mktemp("retrieve")
    node_port = free_port()
    orthanc = Orthanc(
        workdir=root / "orthanc",
        extra_config={"DicomModalities": {"echonode": ["ECHONODE", "127.0.0.1", node_port]}},
    ).start()
    try:
        whole_dir, broken_dir = root / "whole", root / "broken"
        generate_study(whole_dir, 1, rows=240, columns=320, cycles=1, frame_rate=15.0)
        generate_study(broken_dir, 2, rows=240, columns=320, cycles=1, frame_rate=15.0)
        for path in [*sorted(whole_dir.glob("*.dcm")), *sorted(broken_dir.glob("*.dcm"))]:
            _upload(orthanc, path.read_bytes())
        refused = pydicom.dcmread(broken_dir / "tr_cw.dcm")
        refused.SOPInstanceUID = refused.file_meta.MediaStorageSOPInstanceUID = (
            pydicom.uid.generate_uid()
        )
        del refused.PixelData  # an image cut off before its pixels: the node refuses it
        buffer = io.BytesIO()
        refused.save_as(buffer, enforce_file_format=True)
        _upload(orthanc, buffer.getvalue())
        yield Pacs(
            orthanc,
            node_port,
            truth(whole_dir, "plax")["study_instance_uid"],
            whole_dir,
            truth(broken_dir, "plax")["study_instance_uid"],
        )
    finally:
        orthanc.kill()


def _node(tmp_path: Path, pacs: Pacs, **extra: str) -> NodeProcess:
    """A node (not started) whose sources are the PACS; its CLI runs the commands."""
    return NodeProcess(tmp_path / "data", pacs.node_port, {"sources": pacs.sources(), **extra})


def _db(node: NodeProcess, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(node.data_dir / "echo-node.db") as db:
        return db.execute(query).fetchall()


def _jobs(node: NodeProcess) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in _db(node, "SELECT reason, state, message FROM jobs")]  # type: ignore[misc]


def _held(orthanc: Orthanc, study: str) -> dict[str, pydicom.Dataset]:
    held = {}
    for item in orthanc.instances():
        if item["MainDicomTags"]["SOPInstanceUID"]:
            data = orthanc.file(item["MainDicomTags"]["SOPInstanceUID"])
            dataset = pydicom.dcmread(io.BytesIO(data))
            if dataset.StudyInstanceUID == study:
                held[dataset.SOPInstanceUID] = dataset
    return held


@pytest.mark.parametrize("source", ["pacs-get", "web"])
def test_a_study_comes_back_whole_and_is_queued(tmp_path: Path, pacs: Pacs, source: str) -> None:
    node = _node(tmp_path, pacs)
    run = node.cli("reprocess", pacs.whole, "--from", source)
    assert run.returncode == 0, run.stdout + run.stderr
    method = "C-GET" if source == "pacs-get" else "WADO-RS"
    assert f"4 of 4 instance(s) of study {pacs.whole} retrieved from {source} ({method})" in (
        run.stdout
    )
    ((reason, state, message),) = _jobs(node)
    assert (reason, state) == ("retrieve", "queued") and "4 of 4" in message
    # Stored as the source holds them: same datasets, same transfer syntax, sender recorded.
    rows = _db(node, "SELECT sop_instance_uid, path, transfer_syntax_uid, source_ae FROM instances")
    held = _held(pacs.orthanc, pacs.whole)
    assert {row[0] for row in rows} == set(held)
    for uid, path, syntax, source_ae in rows:
        stored = pydicom.dcmread(node.data_dir / path)
        assert stored.PixelData == held[uid].PixelData
        assert syntax == held[uid].file_meta.TransferSyntaxUID
        assert source_ae == ("ORTHANC" if source == "pacs-get" else None)
    status = json.loads(node.cli("status", "--json").stdout)
    assert status["instances"] == 4 and status["quarantined"] == 0
    if source != "pacs-get":
        return
    # Processed like any study: the job runs, the Doppler values are the phantom's.
    processing = make_node(node.data_dir, ECHO_NODE_DESTINATIONS="[]")
    try:
        job_id = claim_next(processing)
        outcome = run_job(processing, job_id, None)
        assert outcome.state == "done", outcome.message
        with processing.sessions() as session:
            (found,) = session.query(FindingRow).filter_by(name="TR_Vmax").all()
            job = session.get(Job, job_id)
            assert job is not None and job.steps[0]["step"] == "retrieve"
            assert job.steps[0]["stored"] == 4
    finally:
        processing.engine.dispose()
    want = abs(truth(pacs.whole_dir, "tr_cw")["expected"]["TR_Vmax"]["value"]) * 100
    assert abs(abs(found.value) - want) <= 0.05 * want


def test_bad_requests_say_why_and_leave_nothing(tmp_path: Path, pacs: Pacs) -> None:
    node = _node(tmp_path, pacs)
    unknown = node.cli("reprocess", pacs.whole, "--from", "nowhere")
    assert unknown.returncode == 2
    assert "no source 'nowhere' (sources: pacs-get, pacs-move, web, down)" in unknown.stderr
    missing = "1.2.826.0.1.3680043.8.498.999999"
    for source in ("pacs-get", "web"):
        run = node.cli("reprocess", missing, "--from", source)
        assert run.returncode == 1
        assert f"study {missing} not found at source {source} (0 instances)" in run.stderr
    down = node.cli("reprocess", pacs.whole, "--from", "down")
    assert down.returncode == 1 and "could not be reached" in down.stderr
    # C-MOVE with no node listening at the address the source has for ECHONODE.
    moved = node.cli("reprocess", pacs.whole, "--from", "pacs-move")
    assert moved.returncode == 1
    assert "nothing retrieved" in moved.stderr and "`echo-node serve` running" in moved.stderr
    assert _db(node, "SELECT count(*) FROM studies") == [(0,)]
    assert _db(node, "SELECT count(*) FROM jobs") == [(0,)]


def _wait_for_jobs(node: NodeProcess, count: int) -> list[tuple[str, str, str]]:
    """The jobs once ``count`` of them have ended (done, skipped or failed)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = _jobs(node)
        if sum(state in ("done", "skipped", "failed") for _, state, _ in jobs) >= count:
            return jobs
        time.sleep(1)
    raise AssertionError(f"jobs: {_jobs(node)}\n{node.log()[-3000:]}")


def test_the_running_node_processes_what_it_retrieves_once_and_never_a_partial_study(
    tmp_path: Path, pacs: Pacs
) -> None:
    """With `serve` running (its sweep every second, no quiet period), a partial retrieval is
    kept and not processed; --allow-partial processes it; a C-MOVE into the node's own SCP is
    processed by its retrieval's job alone."""
    node = _node(
        tmp_path,
        pacs,
        process_enabled="true",
        stable_after_s="0",
        sweep_interval_s="1",
        destinations="[]",
    ).start()
    try:
        run = node.cli("reprocess", pacs.broken, "--from", "pacs-get")
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"4 of 5 instance(s) of study {pacs.broken} retrieved from pacs-get (C-GET)" in (
            run.stderr
        )
        assert "image without Pixel Data" in run.stderr  # why the fifth was refused
        assert "partial retrieval" in run.stderr and "--allow-partial" in run.stderr
        status = json.loads(node.cli("status", "--json").stdout)
        assert status["instances"] == 4 and status["quarantined"] == 1
        time.sleep(3)  # three sweeps: none makes a job of the partial study
        ((reason, state, message),) = _jobs(node)
        assert (reason, state) == ("retrieve", "skipped") and "not processed" in message

        allowed = node.cli("reprocess", pacs.broken, "--from", "pacs-get", "--allow-partial")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "4 of 5 instance(s)" in allowed.stdout and "queued job" in allowed.stdout
        jobs = _wait_for_jobs(node, 2)
        assert [(reason, state) for reason, state, _ in jobs] == [
            ("retrieve", "skipped"),
            ("retrieve", "done"),
        ], jobs

        moved = node.cli("reprocess", pacs.whole, "--from", "pacs-move")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert "4 of 4 instance(s)" in moved.stdout and "(C-MOVE)" in moved.stdout
        jobs = _wait_for_jobs(node, 3)
        time.sleep(3)  # and no sweep adds a job for what the C-MOVE stored
        assert [(reason, state) for reason, state, _ in _jobs(node)] == [
            ("retrieve", "skipped"),
            ("retrieve", "done"),
            ("retrieve", "done"),
        ], _jobs(node)
        received = "SELECT DISTINCT source_ae FROM instances WHERE source_address != 'echo-node'"
        assert _db(node, received) == [("ORTHANC",)]  # the node's own results aside
    finally:
        node.stop()


def test_a_dicomweb_source_that_wants_a_token(tmp_path: Path, pacs: Pacs) -> None:
    """Another Echo Node as the DICOMweb source: its bearer token is sent; a wrong one is
    refused with a message that says so, and nothing is made."""
    with serve_web(tmp_path / "source") as source:
        for path in sorted(pacs.whole_dir.glob("*.dcm")):
            assert import_file(source.node.ingestor, path).outcome == "stored"
        entry = {"name": "peer", "kind": "dicomweb", "url": source.url}
        good = json.dumps([{**entry, "token": source.read_token}])
        bad = json.dumps([{**entry, "token": "not-a-token"}])
        refused = NodeProcess(tmp_path / "a", free_port(), {"sources": bad}).cli(
            "reprocess", pacs.whole, "--from", "peer"
        )
        assert refused.returncode == 1
        assert "source peer refused QIDO-RS (401): check its token" in refused.stderr
        node = NodeProcess(tmp_path / "b", free_port(), {"sources": good})
        run = node.cli("reprocess", pacs.whole, "--from", "peer")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "4 of 4 instance(s)" in run.stdout and "(WADO-RS)" in run.stdout
        # The same files as the source holds, byte for byte (the same envelope either way).
        held = dict(_db(node, "SELECT sop_instance_uid, sha256 FROM instances"))
        with source.node.sessions() as session:
            assert held == {i.sop_instance_uid: i.sha256 for i in session.query(Instance)}
