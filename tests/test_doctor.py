"""`echo-node doctor` on a real data directory: healthy, then with the faults a crash or a disk
leaves behind, then `--fix`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydicom import dcmread
from typer.testing import CliRunner

from echo_node.cli import app
from storage.files import FileStore, digest_file
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

    # Within doctor_in_flight_s (1 h) the new orphan may still be a commit in progress;
    # the size check does not see the changed byte.
    code, checks, _ = doctor(data)
    by_name = rows(checks)
    assert by_name["orphan files"]["status"] == "OK"
    assert "1 newer" in by_name["orphan files"]["detail"]
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
    assert orphan.exists()  # also too young here: left alone
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
