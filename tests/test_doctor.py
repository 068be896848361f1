"""`echo-node doctor` on a real data directory: healthy, then with the faults a crash or a disk
leaves behind, then `--fix`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import select
from typer.testing import CliRunner

from ai.models import default_registry
from echo_node.cli import app
from echo_node.node import open_node
from echo_node.settings import load_settings
from storage.files import FileStore, digest_file
from storage.models import Delivery, Instance, Job, Output, Study
from tests.conftest import us_file
from tests.dicom_files import reuid_copies

PATIENT_NAME, PATIENT_ID = "DOCTOR^SHOULD^NOTSHOW", "PID-DOCTOR-4711"


def doctor(data: Path, *args: str, **settings: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run `echo-node doctor --json`; returns the exit code, the rows and the raw output."""
    env = {"ECHO_NODE_DATA_DIR": str(data), "ECHO_NODE_MODELS_DIR": ""}
    env.update({f"ECHO_NODE_{key.upper()}": value for key, value in settings.items()})
    result = CliRunner().invoke(app, ["doctor", "--json", *args], env=env)
    return result.exit_code, json.loads(result.stdout), result.stdout


def rows(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in checks}


def made_study(tmp_path: Path, count: int) -> list[Path]:
    paths = reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / "study", count)
    for path in paths:
        dataset = dcmread(path)
        dataset.PatientName, dataset.PatientID = PATIENT_NAME, PATIENT_ID
        dataset.save_as(path, enforce_file_format=True)
    return paths


def test_healthy_then_faults_named_then_fixed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    *sent, extra = made_study(tmp_path, 4)
    for path in sent:
        result = CliRunner().invoke(
            app, ["import", str(path)], env={"ECHO_NODE_DATA_DIR": str(data)}
        )
        assert result.exit_code == 0, result.output

    code, checks, _ = doctor(data)
    assert code == 0
    assert {check["status"] for check in checks} == {"OK"}, checks
    assert {"database", "orphan files", "missing files", "stale tmp files", "models"} <= set(
        rows(checks)
    )

    with sqlite3.connect(data / "echo-node.db") as db:
        indexed = dict(db.execute("SELECT sop_instance_uid, path FROM instances").fetchall())
    uids = [str(dcmread(path).SOPInstanceUID) for path in sent]
    # A file linked into place whose row never committed (crash between the two).
    store = FileStore(data)
    header = dcmread(extra)
    orphan = store.instance_path(
        header.StudyInstanceUID,
        header.SeriesInstanceUID,
        header.SOPInstanceUID,
        digest_file(extra).sha256,
    )
    orphan.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(extra, orphan)
    orphan_relative = store.relative(orphan)
    # An indexed instance whose file is gone, and one whose bytes changed but not its size.
    (data / indexed[uids[0]]).unlink()
    damaged = data / indexed[uids[1]]
    content = bytearray(damaged.read_bytes())
    content[-100] ^= 0xFF
    damaged.write_bytes(bytes(content))
    # Left in tmp/ by an aborted association an hour and a half ago, and one arriving now.
    stale, arriving = data / "tmp" / "aborted.part", data / "tmp" / "arriving.part"
    stale.write_bytes(b"\0" * 1000)
    arriving.write_bytes(b"\0" * 1000)
    old = time.time() - 5400
    os.utime(stale, (old, old))

    # Within doctor_in_flight_s (1 h) the new orphan may still be a commit in progress, but
    # it is not called OK (a failed commit leaves just such a file); the size check does not
    # see the changed byte.
    code, checks, _ = doctor(data)
    by_name = rows(checks)
    assert by_name["orphan files"]["status"] == "WARN"
    assert "1 newer" in by_name["orphan files"]["detail"]
    assert by_name["orphan files"]["items"] == [orphan_relative]
    assert by_name["damaged files"]["status"] == "OK"
    assert by_name["missing files"]["status"] == "FAIL" and code == 1
    assert by_name["stale tmp files"]["status"] == "WARN"
    assert by_name["stale tmp files"]["items"] == ["tmp/aborted.part"]

    code, checks, output = doctor(data, "--verify-files", doctor_in_flight_s="0")
    assert code == 1
    by_name = rows(checks)
    assert by_name["orphan files"]["status"] == "WARN"
    assert by_name["orphan files"]["items"] == [orphan_relative]
    assert by_name["missing files"]["status"] == "FAIL"
    assert [uids[0] in item for item in by_name["missing files"]["items"]] == [True]
    assert by_name["damaged files"]["status"] == "FAIL"
    assert len(by_name["damaged files"]["items"]) == 1
    assert uids[1] in by_name["damaged files"]["items"][0]
    assert "sha256" in by_name["damaged files"]["items"][0]
    assert by_name["database"]["detail"].endswith("quick_check ok")
    assert PATIENT_NAME not in output and PATIENT_ID not in output

    code, checks, _ = doctor(data, "--fix", doctor_in_flight_s="3600")
    by_name = rows(checks)
    assert code == 1  # a missing file is not something doctor can repair
    assert by_name["stale tmp files"]["items"] == ["tmp/aborted.part"]
    assert not stale.exists() and arriving.exists()  # the young one may be in transfer
    assert orphan.exists()  # also too young here: left alone, and still reported
    assert by_name["orphan files"]["status"] == "WARN"
    code, checks, _ = doctor(data, "--fix", doctor_in_flight_s="0")
    by_name = rows(checks)
    assert by_name["orphan files"]["status"] == "OK"
    assert by_name["orphan files"]["items"] == [orphan_relative]
    assert not orphan.exists()
    sidecars = [json.loads(path.read_text()) for path in (data / "quarantine").glob("*.json")]
    assert [(s["reason"], s["original_path"]) for s in sidecars] == [("orphan", orphan_relative)]
    kept = data / "quarantine" / sidecars[0]["file"]
    assert kept.read_bytes() == extra.read_bytes()  # moved, never deleted

    code, checks, _ = doctor(data, doctor_in_flight_s="0")
    by_name = rows(checks)
    assert by_name["orphan files"]["status"] == "OK"
    assert by_name["stale tmp files"]["status"] == "OK"
    assert by_name["quarantine"]["status"] == "WARN"
    assert "1 orphan" in by_name["quarantine"]["detail"]


def test_table_output_and_what_cannot_be_checked(tmp_path: Path) -> None:
    never_started = tmp_path / "nothing"
    result = CliRunner().invoke(app, ["doctor"], env={"ECHO_NODE_DATA_DIR": str(never_started)})
    assert result.exit_code == 1
    assert "data directory" in result.stdout and "FAIL" in result.stdout
    assert not never_started.exists()  # the doctor creates nothing
    result = CliRunner().invoke(app, ["doctor"], env={"ECHO_NODE_DIMSE_PORT": "not a port"})
    assert result.exit_code == 1
    assert "settings" in result.stdout and "dimse_port" in result.stdout


def test_expired_leases_undelivered_results_and_changed_models(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (path,) = made_study(tmp_path, 1)
    env = {"ECHO_NODE_DATA_DIR": str(data)}
    assert CliRunner().invoke(app, ["import", str(path)], env=env).exit_code == 0
    node = open_node(load_settings(environ=env))
    now = datetime.now(UTC)
    with node.sessions.begin() as session:
        study = session.scalars(select(Study)).one()
        instance = session.scalars(select(Instance)).one()
        job = Job(
            study_id=study.id,
            reason="stable",
            state="running",
            attempts=1,
            not_before=now,
            lease_until=now - timedelta(minutes=30),
            worker_id="gone:1:0",
            created_at=now,
            started_at=now,
            steps=[],
        )
        session.add(job)
        session.flush()
        # The job's SR as an output (its own instance row stands in for it here).
        output = Output(
            job_id=job.id,
            study_id=study.id,
            instance_id=instance.id,
            kind="sr",
            sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
            created_at=now,
        )
        session.add(output)
        session.flush()
        session.add(
            Delivery(
                output_id=output.id,
                destination="pacs",
                state="failed",
                attempts=8,
                next_attempt_at=now,
                last_error=f"refused {PATIENT_NAME}",  # a peer's text is never shown
            )
        )
        job_id = job.id
    node.engine.dispose()
    spec = default_registry().get("echonet-lvh-amyloid")
    models = data / "models"
    models.mkdir()
    (models / spec.file).write_bytes(b"not the imported checkpoint")
    (models / f"{spec.file}.json").write_text(json.dumps({"sha256": "0" * 64}))

    code, checks, output_text = doctor(data)
    assert code == 1
    by_name = rows(checks)
    assert by_name["jobs"]["status"] == "WARN"
    (stuck,) = by_name["jobs"]["items"]
    assert stuck.startswith(f"job {job_id} (study {study.study_instance_uid}), lease expired 3")
    assert by_name["deliveries"]["status"] == "FAIL"
    assert by_name["deliveries"]["items"] == [
        f"pacs: 1.2.826.0.1.3680043.8.498.1 (study {study.study_instance_uid})"
    ]
    assert by_name["models"]["status"] == "FAIL"
    assert by_name["models"]["items"][0].startswith("echonet-lvh-amyloid: CHANGED")
    assert PATIENT_NAME not in output_text and PATIENT_ID not in output_text


def test_database_behind_the_code_fails_without_being_migrated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (path,) = made_study(tmp_path, 1)
    assert CliRunner().invoke(app, ["import", str(path)], env={"ECHO_NODE_DATA_DIR": str(data)})
    with sqlite3.connect(data / "echo-node.db") as db:
        (head,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        db.execute("UPDATE alembic_version SET version_num = '0002'")
    code, checks, _ = doctor(data)
    assert code == 1
    database = rows(checks)["database"]
    assert database["status"] == "FAIL"
    assert f"at revision 0002, the code's is {head}" in database["detail"]
    assert "orphan files" not in rows(checks)  # nothing read from a schema it does not know
    with sqlite3.connect(data / "echo-node.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    database = rows(doctor(data)[1])["database"]
    assert database["status"] == "FAIL" and "does not know" in database["detail"]
