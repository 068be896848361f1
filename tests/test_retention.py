"""The retention policy with a clock the test sets: received studies go ``retention_days`` after
their results were delivered and their storage commitment answered, never before; results go
``retention_results_days`` after the same moment; a study with anything still owed is kept.

The study is real ultrasound files ingested through the node's own ingest path; its job,
results and deliveries are the rows processing and export write, dated by the test.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from echo_node.cli import app
from echo_node.ingest import OWN_OUTPUT_ADDRESS, Ingestor, Peer
from echo_node.metrics.instruments import Metrics, create_metrics
from echo_node.retention.policy import review
from echo_node.retention.sweep import sweep
from echo_node.settings import Settings, load_settings
from storage.commitments import Reference, claim_due, mark_sent, record_request
from storage.db import make_engine, migrate, session_factory
from storage.files import FileStore
from storage.models import (
    Commitment,
    Delivery,
    Instance,
    Job,
    JobClip,
    Output,
    RetentionDeletion,
    Study,
)
from tests.conftest import NodeProcess, free_port, us_file
from tests.dicom_files import reuid_copies

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@dataclass
class Held:
    """A study of two received instances and one result of the node's, and the clock's base."""

    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    metrics: Metrics
    received: list[Path]  # the stored files
    result: Path
    study_uid: str
    base: datetime  # when the job started; everything after is dated from here


def _settings(data_dir: Path, **values: str) -> Settings:
    environ = {
        "ECHO_NODE_DATA_DIR": str(data_dir),
        "ECHO_NODE_RETENTION_DAYS": "30",
        "ECHO_NODE_RETENTION_RESULTS_DAYS": "90",
        **{f"ECHO_NODE_{key.upper()}": value for key, value in values.items()},
    }
    return load_settings(environ=environ)


def make_study(data_dir: Path, sources: Path, *, delivered: bool = True, url: str = "") -> Held:
    """Ingest the study, then write the rows a done job with one delivered SR leaves
    (database: the data directory's SQLite file unless ``url`` names another)."""
    store = FileStore(data_dir)
    store.prepare()
    engine = make_engine(url or f"sqlite:///{data_dir / 'echo-node.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    metrics = create_metrics()
    ingestor = Ingestor(store, sessions, metrics)
    files = reuid_copies(us_file("US1_J2KR.dcm"), sources, 3, series_per=2)
    stored = []
    for index, path in enumerate(files):
        temp = store.new_temp_path()
        shutil.copyfile(path, temp)
        peer = (
            Peer("US1", "127.0.0.1", "dimse")
            if index < 2
            else Peer(None, OWN_OUTPUT_ADDRESS, "node")
        )
        result = ingestor.ingest(temp, peer)
        assert result.acknowledged and result.path is not None
        stored.append(result)
    base = datetime.now(UTC) + MINUTE
    with sessions.begin() as session:
        study = session.scalars(select(Study)).one()
        job = Job(
            study_id=study.id,
            content_key="k",
            reason="stable",
            state="done",
            attempts=1,
            not_before=base,
            created_at=base,
            started_at=base,
            finished_at=base + MINUTE,
            steps=[],
        )
        session.add(job)
        session.flush()
        received_row = session.scalars(
            select(Instance).where(Instance.sop_instance_uid == stored[0].sop_instance_uid)
        ).one()
        session.add(
            JobClip(
                job_id=job.id,
                instance_id=received_row.id,
                sop_instance_uid=received_row.sop_instance_uid,
                view="a4c",
                decided_by="rules",
                confidence=1.0,
                detail={},
            )
        )
        output_row = session.scalars(
            select(Instance).where(Instance.sop_instance_uid == stored[2].sop_instance_uid)
        ).one()
        output = Output(
            job_id=job.id,
            study_id=study.id,
            instance_id=output_row.id,
            kind="sr",
            sop_instance_uid=output_row.sop_instance_uid,
            created_at=base + MINUTE,
        )
        session.add(output)
        session.flush()
        session.add(
            Delivery(
                output_id=output.id,
                destination="pacs",
                state="sent" if delivered else "pending",
                attempts=1,
                next_attempt_at=base + MINUTE,
                sent_at=base + DAY if delivered else None,
            )
        )
        study_uid = study.study_instance_uid
    paths = [result.path for result in stored]
    received, result = [p for p in paths[:2] if p], paths[2]
    assert result is not None
    return Held(engine, sessions, store, metrics, received, result, study_uid, base)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Held]:
    study = make_study(tmp_path / "data", tmp_path / "sources")
    yield study
    study.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def held_anywhere(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Held]:
    """The study on SQLite and on a real PostgreSQL (the deletes use subqueries and NOT EXISTS)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    study = make_study(tmp_path / "data", tmp_path / "sources", url=url)
    yield study
    study.engine.dispose()


def _due(study: Held, settings: Settings, now: datetime) -> list[tuple[str, str]]:
    with study.sessions() as session:
        return [
            (a.study_instance_uid, a.kind) for a in review(session, settings, now) if a.due(now)
        ]


def _received_reference(study: Held) -> Reference:
    with study.sessions() as session:
        row = session.scalars(select(Instance).order_by(Instance.id)).first()
        assert row is not None
        return Reference(row.sop_class_uid, row.sop_instance_uid)


def test_received_go_after_delivery_and_commitment_results_later_never_before(
    held_anywhere: Held, caplog: pytest.LogCaptureFixture
) -> None:
    held = held_anywhere
    settings = _settings(held.store.root)
    delivered = held.base + DAY
    # A modality asked the node to commit one of the received instances; not answered yet.
    with held.sessions.begin() as session:
        record_request(session, "2.25.77", "US1", "127.0.0.1", [_received_reference(held)])

    assert _due(held, settings, delivered + 30 * DAY - MINUTE) == []
    late = delivered + 40 * DAY
    with held.sessions() as session:
        (assessment,) = review(session, settings, late)
    assert not assessment.due(late)
    assert assessment.reason == "storage commitment not answered (Transaction UID 2.25.77)"
    assert sweep(held.sessions, held.store, settings, late) == []
    assert all(path.is_file() for path in held.received)

    answered = delivered + 5 * DAY  # the report went out five days after the delivery
    with held.sessions.begin() as session:
        (claim,) = claim_due(session, lease_s=60, limit=1)
        assert mark_sent(session, claim, event_type=1, failed_count=0)
        session.execute(update(Commitment).values(sent_at=answered))
    assert _due(held, settings, answered + 30 * DAY - MINUTE) == []
    with held.sessions() as session:
        (assessment,) = review(session, settings, answered + 30 * DAY)
    assert assessment.due_at == answered + 30 * DAY
    assert "storage commitment answered" in assessment.reason

    caplog.set_level(logging.INFO, logger="echo_node.retention.sweep")
    deleted = sweep(
        held.sessions, held.store, settings, answered + 30 * DAY, held.metrics.retention_deleted
    )
    assert [(d.study_instance_uid, d.kind, d.instances) for d in deleted] == [
        (held.study_uid, "received", 2)
    ]
    assert not any(path.exists() for path in held.received)
    assert held.result.is_file()  # results are kept longer
    with held.sessions() as session:
        uids = set(session.scalars(select(Instance.sop_instance_uid)))
        assert uids == {_uid_of(held.result)}
        clip = session.scalars(select(JobClip)).one()
        assert clip.instance_id is None and clip.sop_instance_uid  # the decision stays
        record = session.scalars(select(RetentionDeletion)).one()
        assert record.kind == "received" and record.files_removed_at is not None
    assert (
        held.metrics.registry.get_sample_value(
            "echo_node_retention_deleted_instances_total", {"kind": "received"}
        )
        == 2
    )
    line = next(r for r in caplog.records if r.getMessage() == "deleted by the retention policy")
    assert line.study_instance_uid == held.study_uid  # type: ignore[attr-defined]
    assert held.study_uid not in line.getMessage()  # identifiers in extra=, not the message

    # Results count from their delivery (commitment concerns the received images).
    results_due = delivered + 90 * DAY
    assert sweep(held.sessions, held.store, settings, results_due - MINUTE) == []
    assert held.result.is_file()
    deleted = sweep(held.sessions, held.store, settings, results_due)
    assert [(d.kind, d.instances) for d in deleted] == [("results", 1)]
    assert not held.result.exists()
    assert list((held.store.instances).iterdir()) == []  # study and series directories too
    with held.sessions() as session:
        assert session.scalars(select(Study)).all() == []
        assert session.scalars(select(Job)).all() == []
        kinds = [r.kind for r in session.scalars(select(RetentionDeletion))]
    assert kinds == ["received", "results"]


def _uid_of(path: Path) -> str:
    return path.name.rsplit(".", 2)[0]


def test_anything_still_owed_holds_the_study(tmp_path: Path) -> None:
    study = make_study(tmp_path / "data", tmp_path / "sources", delivered=False)
    settings = _settings(study.store.root)
    late = study.base + 400 * DAY
    with study.sessions() as session:
        (assessment,) = review(session, settings, late)
    assert assessment.reason == "results of job #1 not delivered: 1 pending for pacs"
    with study.sessions.begin() as session:
        session.execute(update(Delivery).values(state="sent", sent_at=study.base + DAY))
        session.execute(update(Job).values(state="failed"))
    with study.sessions() as session:
        (assessment,) = review(session, settings, late)
    assert assessment.reason == "its last job #1 is failed: results not delivered"
    with study.sessions.begin() as session:
        session.execute(update(Job).values(state="done"))
        # An instance arrived after the job: a new job will process the study again.
        session.execute(update(Study).values(last_received_at=study.base + 2 * MINUTE))
    with study.sessions() as session:
        (assessment,) = review(session, settings, late)
    assert "instances arrived after its last job" in assessment.reason
    assert sweep(study.sessions, study.store, settings, late) == []
    assert all(path.is_file() for path in [*study.received, study.result])
    study.engine.dispose()


def test_a_deletion_cut_short_after_its_commit_is_finished_by_the_next_sweep(
    held: Held,
) -> None:
    """The record lists the files: a crash between the commit and the unlinks leaves them to
    the next sweep, never as unindexed files nobody removes."""
    with held.sessions.begin() as session:
        session.add(
            RetentionDeletion(
                study_instance_uid=held.study_uid,
                kind="received",
                reason="test",
                instances=2,
                bytes=0,
                files=[held.store.relative(path) for path in held.received],
                deleted_at=held.base,
                files_removed_at=None,
            )
        )
    sweep(held.sessions, held.store, _settings(held.store.root), held.base)
    assert not any(path.exists() for path in held.received)
    with held.sessions() as session:
        assert session.scalars(select(RetentionDeletion)).one().files_removed_at is not None


def test_settings_keep_results_at_least_as_long_as_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_results_days must be 0"):
        _settings(tmp_path, retention_days="30", retention_results_days="7")
    with pytest.raises(ValueError, match="needs retention_days"):
        _settings(tmp_path, retention_days="0", retention_results_days="7")


def _cli(data_dir: Path, *args: str, **settings: str) -> tuple[int, str]:
    env = {
        "ECHO_NODE_DATA_DIR": str(data_dir),
        **{f"ECHO_NODE_{key.upper()}": value for key, value in settings.items()},
    }
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_cleanup_dry_run_lists_what_would_go_and_why(held: Held) -> None:
    data = held.store.root
    due_at = held.base + DAY + 30 * DAY
    code, output = _cli(data, "cleanup", "--dry-run", retention_days="0")
    assert code == 0 and "retention is off" in output

    code, output = _cli(
        data,
        "cleanup",
        "--dry-run",
        "--json",
        "--held",
        "--as-of",
        (due_at + MINUTE).strftime("%Y-%m-%dT%H:%M:%S"),
        retention_days="30",
    )
    assert code == 0, output
    (row,) = json.loads(output)
    assert row["study_instance_uid"] == held.study_uid
    assert row["would_delete"] == "received" and row["instances"] == 2
    assert row["reason"].startswith("results delivered ") and "retention_days = 30" in row["reason"]

    code, output = _cli(data, "cleanup", "--dry-run", "--held", retention_days="30")
    assert code == 0 and "kept" in output and "0 studies due" in output

    code, output = _cli(data, "cleanup", "--as-of", "2100-01-01", retention_days="30")
    assert code == 2 and "--dry-run" in output
    code, output = _cli(data, "cleanup", retention_days="30")  # the real clock: not due yet
    assert code == 0 and "0 studies deleted" in output
    assert all(path.is_file() for path in held.received)


def test_serve_sweeps_on_schedule(tmp_path: Path, node_factory: type[NodeProcess]) -> None:
    """`echo-node serve` runs the sweep by itself: a study delivered two days ago goes at start
    under retention_days = 1."""
    study = make_study(tmp_path / "data", tmp_path / "sources")
    with study.sessions.begin() as session:
        session.execute(update(Delivery).values(sent_at=study.base - 2 * DAY))
        session.execute(
            update(Job).values(created_at=study.base - 3 * DAY, finished_at=study.base - 3 * DAY)
        )
        session.execute(update(Study).values(last_received_at=study.base - 4 * DAY))
    study.engine.dispose()
    node = node_factory(study.store.root, free_port(), extra_env={"retention_days": "1"}).start()
    deadline = time.monotonic() + 30
    while "deleted by the retention policy" not in node.log():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.2)
    assert not any(path.exists() for path in study.received)
    assert study.result.is_file()
    status = json.loads(node.cli("status", "--json").stdout)["retention"]
    assert status["studies_deleted"] == {"received": 1, "results": 0}
    assert node.stop() == 0
