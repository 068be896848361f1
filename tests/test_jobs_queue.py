"""The job queue on real databases: stable-study detection, no duplicate jobs, leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import select
from typer.testing import CliRunner

from echo_node.cli import app
from echo_node.cli.importer import import_file
from echo_node.ingest import OWN_OUTPUT_ADDRESS, Peer
from echo_node.jobs import queue
from echo_node.jobs.outcome import JobOutcome
from echo_node.jobs.selection import processable_instances
from echo_node.node import Node, open_node
from echo_node.settings import load_settings
from storage.models import Job, Study
from storage.queue import utc_now
from tests.conftest import us_file
from tests.dicom_files import reuid_copies


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    environ = {"ECHO_NODE_DATA_DIR": str(tmp_path / "data"), "ECHO_NODE_STABLE_AFTER_S": "1"}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        environ["ECHO_NODE_DATABASE_URL"] = url
    opened = open_node(load_settings(environ=environ))
    yield opened
    opened.engine.dispose()


def sweep(node: Node, wait_s: float = 0) -> list[int]:
    """A sweep after waiting ``wait_s`` (the quiet period is 1 s in these tests)."""
    time.sleep(wait_s)
    with node.sessions.begin() as session:
        return queue.enqueue_stable_studies(session, node.settings, utc_now())


def test_a_quiet_study_gets_one_job_and_new_content_another(node: Node, tmp_path: Path) -> None:
    files = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "s", 3)
    for path in files[:2]:
        assert import_file(node.ingestor, path).outcome == "stored"
    assert sweep(node) == []  # not quiet for 1 s yet
    first = sweep(node, wait_s=1.1)
    assert len(first) == 1
    assert sweep(node, wait_s=0.1) == []  # same content: no second job
    assert import_file(node.ingestor, files[0]).outcome == "duplicate"
    assert sweep(node, wait_s=1.1) == []  # a duplicate is not new content

    # What the node stores itself (its SR, its overlays) does not make the study new again.
    own = dcmread(files[2])
    own.SOPInstanceUID = generate_uid()
    own.file_meta.MediaStorageSOPInstanceUID = own.SOPInstanceUID
    own_path = tmp_path / "own.dcm"
    own.save_as(own_path)
    temp = node.store.new_temp_path(".dcm")
    temp.write_bytes(own_path.read_bytes())
    result = node.ingestor.ingest(
        temp, Peer(ae_title=None, address=OWN_OUTPUT_ADDRESS, transport="node")
    )
    assert result.outcome == "stored"
    assert sweep(node, wait_s=1.1) == []

    assert import_file(node.ingestor, files[2]).outcome == "stored"
    second = sweep(node, wait_s=1.1)
    assert len(second) == 1 and second != first
    with node.sessions() as session:
        keys = session.scalars(select(Job.content_key)).all()
    assert len(set(keys)) == 2


def test_study_without_processable_instances_is_skipped_with_the_reason(node: Node) -> None:
    # A CT-like modality is outside process_modalities (US).
    import_file(node.ingestor, us_file("CT_small.dcm"))
    (job_id,) = sweep(node, wait_s=1.1)
    with node.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.state == queue.SKIPPED
        assert "no instance to process" in (job.message or "")


def _queue_jobs(node: Node, tmp_path: Path, count: int) -> None:
    for index in range(count):
        (path,) = reuid_copies(us_file("examples_palette.dcm"), tmp_path / f"q{index}", 1)
        import_file(node.ingestor, path)
    assert len(sweep(node, wait_s=1.1)) == count


def test_concurrent_workers_never_claim_the_same_job(node: Node, tmp_path: Path) -> None:
    _queue_jobs(node, tmp_path, 6)
    claimed: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            with node.sessions.begin() as session:
                job = queue.claim_job(session, name, node.settings, utc_now())
                if job is None:
                    return
                job_id = job.id
            with lock:
                claimed.append(job_id)
            with node.sessions.begin() as session:
                queue.record_outcome(session, job_id, name, JobOutcome("done", "ok"))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 6
    with node.sessions() as session:
        assert set(session.scalars(select(Job.state))) == {queue.DONE}


def test_expired_lease_is_taken_over_and_retries_end_in_failed(node: Node, tmp_path: Path) -> None:
    _queue_jobs(node, tmp_path, 1)
    settings = node.settings
    now = utc_now()
    with node.sessions.begin() as session:
        job = queue.claim_job(session, "dead-worker", settings, now)
        assert job is not None
        job_id = job.id
    with node.sessions.begin() as session:  # nobody else may take it while the lease holds
        assert queue.claim_job(session, "other", settings, now + timedelta(seconds=1)) is None
    later = now + timedelta(seconds=settings.job_lease_s + 1)
    with node.sessions.begin() as session:
        taken = queue.claim_job(session, "other", settings, later)
        assert taken is not None and taken.id == job_id and taken.attempts == 2
    with node.sessions.begin() as session:  # the dead worker's late outcome is dropped
        queue.record_outcome(session, job_id, "dead-worker", JobOutcome("done", "late"))
    with node.sessions.begin() as session:
        queue.record_failure(session, job_id, "other", "database busy", True, settings)
        job = session.get(Job, job_id)
        assert job is not None and job.state == queue.QUEUED
        assert "retry in" in (job.error or "")
    retry_at = later + timedelta(seconds=settings.retry_backoff_s * 2 + 1)
    with node.sessions.begin() as session:
        again = queue.claim_job(session, "other", settings, retry_at)
        assert again is not None and again.attempts == 3
    with node.sessions.begin() as session:
        queue.record_failure(session, job_id, "other", "database busy", True, settings)
        job = session.get(Job, job_id)
        assert job is not None and job.state == queue.FAILED  # job_max_attempts = 3


def test_sop_class_and_sender_filters_decide_what_is_processed(tmp_path: Path) -> None:
    multiframe, single = "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.6.1"
    node = open_node(
        load_settings(
            environ={
                "ECHO_NODE_DATA_DIR": str(tmp_path / "data"),
                "ECHO_NODE_PROCESS_SOP_CLASSES": multiframe,
            }
        )
    )
    clip = us_file("examples_ybr_color.dcm")  # US Multi-frame
    still = us_file("examples_palette.dcm")  # US Image
    assert str(dcmread(clip).SOPClassUID) == multiframe
    assert str(dcmread(still).SOPClassUID) == single
    for path in (clip, still):
        assert import_file(node.ingestor, path).outcome == "stored"
    with node.sessions() as session:
        studies = {str(dcmread(path).StudyInstanceUID): path for path in (clip, still)}
        chosen = {
            uid: [i.sop_class_uid for i in processable_instances(session, study.id, node.settings)]
            for uid, study in (
                (uid, session.scalars(select(Study).where(Study.study_instance_uid == uid)).one())
                for uid in studies
            )
        }
    assert chosen[str(dcmread(clip).StudyInstanceUID)] == [multiframe]
    assert chosen[str(dcmread(still).StudyInstanceUID)] == []

    by_sender = node.settings.model_copy(
        update={"process_sop_classes": (), "process_calling_aes": ("US_ROOM1",)}
    )
    with node.sessions() as session:
        study = session.scalars(select(Study)).first()
        assert study is not None
        assert processable_instances(session, study.id, by_sender) == []  # imported: no AE
    node.engine.dispose()


def test_a_study_that_just_arrived_goes_before_a_thousand_reprocessing_jobs(
    node: Node, tmp_path: Path
) -> None:
    """`reprocess --since` of 1000 studies, then a live study: the live one is claimed first,
    and `--urgent` puts a reprocess beside live studies."""
    long_ago = utc_now() - timedelta(days=30)
    with node.sessions.begin() as session:
        session.add_all(
            Study(
                study_instance_uid=f"1.2.826.0.1.3680043.8.498.{index + 1}",
                first_received_at=long_ago,
                last_received_at=long_ago,
            )
            for index in range(1000)
        )
    environ = {"ECHO_NODE_DATA_DIR": str(node.settings.data_dir)}
    environ["ECHO_NODE_DATABASE_URL"] = node.settings.resolved_database_url
    since = (long_ago - timedelta(days=1)).strftime("%Y-%m-%d")
    result = CliRunner().invoke(app, ["reprocess", "--since", since], env=environ)
    assert result.exit_code == 0, result.output
    assert "queued 1000 job(s)" in result.output

    (path,) = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "live", 1)
    assert import_file(node.ingestor, path).outcome == "stored"
    sweep(node, wait_s=1.1)  # the 1000 hold no instance: their stable jobs are skipped at once
    with node.sessions() as session:
        (live,) = session.scalars(
            select(Job.id).where(Job.reason == "stable", Job.state == queue.QUEUED)
        ).all()
    with node.sessions.begin() as session:
        first = queue.claim_job(session, "w", node.settings, utc_now())
        assert first is not None and first.id == live and first.reason == "stable"
    with node.sessions.begin() as session:
        second = queue.claim_job(session, "w", node.settings, utc_now())
        assert second is not None and second.reason == "reprocess" and second.id < live

    uid = "1.2.826.0.1.3680043.8.498.7"
    result = CliRunner().invoke(app, ["reprocess", uid, "--urgent"], env=environ)
    assert result.exit_code == 0, result.output
    with node.sessions.begin() as session:
        urgent = queue.claim_job(session, "w", node.settings, utc_now())
        assert urgent is not None and urgent.reason == "reprocess"
        assert urgent.study.study_instance_uid == uid
