"""A running job's progress on its row: clip i of n, the step, time left; shown by `jobs`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ai.phantom import generate_study
from echo_node.cli import app
from echo_node.cli.importer import import_file
from echo_node.cli.jobs import describe_progress
from echo_node.jobs import queue
from echo_node.processing import run_job
from storage.models import Job
from storage.queue import utc_now
from tests.test_processing import make_node, stable_job


def test_progress_follows_the_clips_and_steps_and_jobs_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 2, rows=240, columns=320, cycles=1, frame_rate=20.0)
    node = make_node(tmp_path / "data")
    for path in sorted(phantom.glob("*.dcm")):
        assert import_file(node.ingestor, path).outcome == "stored"
    job_id = stable_job(node)

    written: list[dict[str, Any]] = []
    record = queue.record_progress

    def keep(session: Any, job: int, progress: dict[str, Any]) -> None:
        written.append(progress)
        record(session, job, progress)

    monkeypatch.setattr(queue, "record_progress", keep)
    outcome = run_job(node, job_id, None)
    assert outcome.state == "done"

    clips = [p["clip"] for p in written]
    assert clips == sorted(clips) and set(clips) == {1, 2, 3, 4}
    assert all(p["clips"] == 4 for p in written)
    steps = [p["step"] for p in written]
    assert steps[:2] == ["decode", "view"] and steps[-1] == "sr"
    assert "pipeline:doppler" in steps and "overlay" in steps
    assert all(p["estimated_left_s"] is None for p in written if p["clip"] == 1)
    assert all(p["estimated_left_s"] is not None for p in written if p["clip"] > 1)

    # The worker records the outcome after run_job: until then the row says where it is.
    with node.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == queue.RUNNING
        assert job.progress == written[-1]
    environ = {"ECHO_NODE_DATA_DIR": str(node.settings.data_dir)}
    result = CliRunner().invoke(app, ["jobs"], env=environ, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "clip 4/4 sr" in result.output
    node.engine.dispose()


def test_the_estimate_ages_and_never_goes_below_zero() -> None:
    now = utc_now().replace(microsecond=0)  # updated_at is kept to the second
    progress = {
        "clip": 3,
        "clips": 60,
        "step": "pipeline:plax",
        "estimated_left_s": 130.0,
        "updated_at": (now - timedelta(seconds=10)).isoformat(timespec="seconds"),
    }
    assert describe_progress(progress, now) == "clip 3/60 pipeline:plax, about 2 min 0 s left"
    assert describe_progress(progress, now + timedelta(minutes=5)).endswith("about 0 s left")
    first = {**progress, "clip": 1, "estimated_left_s": None}
    assert describe_progress(first, now) == "clip 1/60 pipeline:plax"
    assert describe_progress(None, now) == ""
