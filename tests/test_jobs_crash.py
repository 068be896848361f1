"""kill -9 of the node while a job runs: after restart the job is taken over and completes
once (one SR for the study, the job on its second attempt)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from ai.phantom import generate_study
from tests.conftest import NodeProcess, free_port
from tests.dicom_files import storescu

PROCESSING = {
    "process_enabled": "true",
    "stable_after_s": "1",
    "sweep_interval_s": "0.5",
    "job_lease_s": "6",
    "torch_threads": "1",
}


def job_rows(data_dir: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(data_dir / "echo-node.db") as db:
        return db.execute("SELECT id, state, attempts FROM jobs ORDER BY id").fetchall()


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_job_interrupted_by_kill_9_is_taken_over_and_completes_once(
    node_factory: type[NodeProcess], tmp_path: Path
) -> None:
    # Big enough that the job runs for over a second: the kill must land while it runs.
    files = generate_study(tmp_path / "phantom", seed=11, rows=480, columns=640, cycles=3)
    data = tmp_path / "data"
    node = node_factory(data, free_port(), PROCESSING).start()
    assert storescu(node.port, files, flag="-xy").returncode == 0

    wait_for(lambda: any(state == "running" for _, state, _ in job_rows(data)), 60, "a job")
    node.stop(signal.SIGKILL)
    ((job_id, state, attempts),) = job_rows(data)
    assert (state, attempts) == ("running", 1)

    restarted = node_factory(data, free_port(), PROCESSING).start()
    wait_for(lambda: job_rows(data)[0][1] in ("done", "failed"), 120, "the job to finish")
    assert job_rows(data) == [(job_id, "done", 2)]
    with sqlite3.connect(data / "echo-node.db") as db:
        outputs = db.execute("SELECT job_id, kind FROM outputs").fetchall()
    assert [kind for _, kind in outputs].count("sr") == 1
    assert {job for job, _ in outputs} == {job_id}
    assert "lease expired, taking the job over" in restarted.log()
