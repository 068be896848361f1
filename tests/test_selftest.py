"""`echo-node selftest` against a running node (`serve` with a worker) whose destination is a
real Orthanc: a healthy node passes, its phantom study processed and then gone, nothing sent;
a node whose Doppler calibration is broken (the phantom's spectral PhysicalDeltaY written 25 %
off, the truth unchanged) fails, naming the values that differ, in the metrics, `doctor` and
`status` alike."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset

import ai.phantom.dicom
from ai.clip import UltrasoundRegion
from echo_node.node import open_node
from echo_node.periodic import Scheduler, schedule_selftest
from echo_node.selftest.run import run_selftest
from echo_node.settings import load_settings
from tests.conftest import NodeProcess, free_port
from tests.orthanc import Orthanc

# Orthanc, dcmtk and the node as a process: peers (not in `make test-unit`).
pytestmark = [pytest.mark.peer, pytest.mark.timeout(600)]

CLASSICAL = {"TR_Vmax", "MV_E", "MV_A", "MV_E_A", "TR_PG"}


@dataclass
class Running:
    node: NodeProcess
    pacs: Orthanc
    http_port: int

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=30).text
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("echo_node_selftest_")
        }

    def doctor_row(self) -> dict[str, Any]:
        rows = json.loads(self.node.cli("doctor", "--json").stdout)
        (row,) = [row for row in rows if row["name"] == "self-test"]
        return dict(row)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("selftest")
    pacs = Orthanc(workdir=root / "orthanc").start()
    http_port = free_port()
    destination = pacs.dimse_destination("pacs").model_dump(exclude_none=True)
    node = NodeProcess(
        root / "data",
        free_port(),
        {
            "process_enabled": "true",
            "stable_after_s": "1",
            "sweep_interval_s": "1",
            "destinations": json.dumps([destination]),
            "http_enabled": "true",
            "http_port": str(http_port),
            # Only the node itself (its self-test) may send; scanners are not part of this.
            "allowed_peers": "ECHONODE@127.0.0.1",
        },
    ).start()
    try:
        yield Running(node, pacs, http_port)
    finally:
        node.stop()
        pacs.kill()


def _no_study_left(running: Running) -> None:
    status = json.loads(running.node.cli("status", "--json").stdout)
    assert (status["studies"], status["instances"]) == (0, 0), status
    assert not list((running.node.data_dir / "instances").rglob("*.dcm"))
    assert running.pacs.instances() == []  # a QA study is never sent


def test_a_healthy_node_passes_and_leaves_nothing(running: Running) -> None:
    run = running.node.cli("selftest", "--json", "--timeout", "240")
    assert run.returncode == 0, run.stdout + run.stderr + running.node.log()[-3000:]
    result = json.loads(run.stdout)
    assert result["passed"] is True and result["summary"].startswith("PASS")
    compared = {c["key"]: c for c in result["comparisons"]}
    assert set(compared) >= CLASSICAL, compared
    assert all(c["ok"] for c in compared.values())
    # No weights here: only the classical Doppler engine gave values, and the result says so.
    assert any("only the classical Doppler values were compared" in n for n in result["notes"])
    _no_study_left(running)
    metrics = running.metrics()
    assert metrics["echo_node_selftest_passed"] == 1.0
    assert metrics["echo_node_selftest_failed_values"] == 0.0
    assert metrics["echo_node_selftest_last_run_timestamp_seconds"] > 1.7e9
    row = running.doctor_row()
    assert row["status"] == "OK" and row["detail"].startswith("passed")
    status = running.node.cli("status").stdout
    assert "passed" in status and "within tolerance" in status


def test_a_broken_calibration_fails_naming_the_values(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spectral regions' PhysicalDeltaY written 25 % too large: every velocity the node
    reads is 25 % too fast, while the truth stays the phantom's."""
    region_item = ai.phantom.dicom._region

    def miscalibrated(region: UltrasoundRegion) -> Dataset:
        if region.data_type in (3, 4):  # PW, CW spectral
            region = dataclasses.replace(region, physical_delta_y=region.physical_delta_y * 1.25)
        return region_item(region)

    monkeypatch.setattr(ai.phantom.dicom, "_region", miscalibrated)
    node = open_node(load_settings(environ=running.node.env))
    try:
        result = run_selftest(node, timeout_s=240)
    finally:
        node.engine.dispose()
    assert result.passed is False, result
    failed = {c["key"]: c for c in result.comparisons if not c["ok"]}
    assert set(failed) >= {"TR_Vmax", "MV_E", "MV_A", "TR_PG"}, result.comparisons
    assert "MV_E_A" not in failed  # a ratio of two velocities 25 % off each is still right
    tr = failed["TR_Vmax"]
    assert tr["reported"] == pytest.approx(1.25 * tr["truth"], rel=0.05)
    assert "TR Vmax: reported" in result.summary and "OUTSIDE ±5 %" in result.summary
    _no_study_left(running)
    metrics = running.metrics()
    assert metrics["echo_node_selftest_passed"] == 0.0
    assert metrics["echo_node_selftest_failed_values"] >= 4
    row = running.doctor_row()
    assert row["status"] == "FAIL"
    assert any(item.startswith("TR Vmax: reported") for item in row["items"]), row
    assert "FAILED" in running.node.cli("status").stdout


def test_the_daily_schedule(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"ECHO_NODE_DATA_DIR": str(tmp_path / "data"), "ECHO_NODE_SELFTEST_TIME": "02:30"}
    )
    node = open_node(settings)
    scheduler = Scheduler()
    try:
        schedule_selftest(scheduler, node)
        job = scheduler.job("daily-selftest")
        assert job is not None
        fields = {field.name: str(field) for field in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("2", "30")
    finally:
        scheduler.shutdown()
        node.engine.dispose()
    off = open_node(load_settings(environ={"ECHO_NODE_DATA_DIR": str(tmp_path / "off")}))
    scheduler = Scheduler()
    try:
        schedule_selftest(scheduler, off)
        assert scheduler.job("daily-selftest") is None
    finally:
        scheduler.shutdown()
        off.engine.dispose()
