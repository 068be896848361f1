"""Study turnaround on CPU: the phantom study pushed with storescu into `echo-node serve`, until
its SR is stored in Orthanc (the PACS, on loopback), split by step (issue 6's benchmark).
TURNAROUND_MODELS_DIR=DIR runs the neural pipelines with the checkpoints in DIR (e.g.
benchmarks/work/models, which benchmarks/study.py fills with every model), on the backend
TURNAROUND_BACKEND names (torch, openvino or auto, the default), and writes
turnaround-models.json instead of turnaround.json, so the figure without weights stays.

Times come from the node's own records, one clock: the last instance's received_at, the job's
created/started/finished times and per-step seconds, and the SR delivery's sent_at (the moment
Orthanc acknowledged the C-STORE). The quiet period is part of the turnaround by design: a
study is processed once no instance arrived for `stable_after_s`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from ai.phantom.study import generate_study
from echo_node.jobs.selection import OWN_OUTPUT_ADDRESS
from echo_node.settings import load_settings
from storage.db import make_engine, session_factory
from storage.models import Delivery, Instance, Job, Output, Series, Study
from tests.conftest import free_port
from tests.orthanc import Orthanc

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "turnaround"
RESULTS = ROOT / "results"
ECHO_NODE = Path(sys.executable).parent / "echo-node"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
RUNS = 3
QUIET_S = 3.0
SWEEP_S = 0.5
TIMEOUT_S = 600.0
# Checkpoints for the neural pipelines (`echo-node models import` layout); none by default, so
# PLAX/A4C report model_not_installed at once and only the Doppler engine measures.
MODELS_DIR = os.environ.get("TURNAROUND_MODELS_DIR", "")
BACKEND = os.environ.get("TURNAROUND_BACKEND", "auto")


def node_env(data: Path, port: int, orthanc_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    destination = {
        "name": "orthanc",
        "kind": "dimse",
        "ae_title": "ORTHANC",
        "host": "127.0.0.1",
        "port": orthanc_port,
    }
    env.update(
        ECHO_NODE_DATA_DIR=str(data),
        ECHO_NODE_BIND="127.0.0.1",
        ECHO_NODE_DIMSE_PORT=str(port),
        ECHO_NODE_HTTP_ENABLED="false",
        ECHO_NODE_STABLE_AFTER_S=str(QUIET_S),
        ECHO_NODE_SWEEP_INTERVAL_S=str(SWEEP_S),
        ECHO_NODE_DESTINATIONS=json.dumps([destination]),
        ECHO_NODE_LOG_FORMAT="json",
        ECHO_NODE_MODELS_DIR=MODELS_DIR,
        ECHO_NODE_INFERENCE_BACKEND=BACKEND,
    )
    return env


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("echo-node exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("echo-node did not listen")


def sr_in_orthanc(url: str, study_uid: str) -> bool:
    found = httpx.post(f"{url}/tools/lookup", content=study_uid, timeout=10).json()
    for item in found:
        if item["Type"] == "Study":
            for instance in httpx.get(f"{url}/studies/{item['ID']}/instances", timeout=10).json():
                tags = httpx.get(f"{url}/instances/{instance['ID']}/simplified-tags", timeout=10)
                if tags.json().get("Modality") == "SR":
                    return True
    return False


def one_run(env: dict[str, str], port: int, url: str, seed: int) -> dict[str, Any]:
    phantom = WORK / f"phantom-{seed}"
    paths = generate_study(phantom, seed)
    study_uid = json.loads(paths[0].with_suffix(".json").read_text())["study_instance_uid"]
    push = subprocess.run(
        ["storescu", "-xy", "-aec", "ECHONODE", "127.0.0.1", str(port), *map(str, paths)],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
    )
    if push.returncode != 0:
        raise RuntimeError(f"storescu failed: {push.stdout}{push.stderr}")
    pushed = time.monotonic()
    deadline = pushed + TIMEOUT_S
    while not sr_in_orthanc(url, study_uid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no SR in Orthanc for study {study_uid} within {TIMEOUT_S} s")
        time.sleep(0.2)
    observed = time.monotonic() - pushed
    # Orthanc holds the SR a moment before the node has recorded its acknowledgement.
    while (times := split(env, study_uid)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node never recorded the SR of {study_uid} as sent")
        time.sleep(0.1)
    return {"seed": seed, "study_uid": study_uid, "observed_s": observed, **times}


def split(env: dict[str, str], study_uid: str) -> dict[str, Any] | None:
    """The run's times from the node's database (read-only here); None until the node has
    recorded the job as done and its SR as sent."""
    # Only reads: no open_node (which would prepare the store and migrate) beside the node.
    engine = make_engine(load_settings(environ=env).resolved_database_url)
    try:
        with session_factory(engine)() as session:
            study = session.scalars(
                select(Study).where(Study.study_instance_uid == study_uid)
            ).one()
            last_received: datetime | None = session.scalar(
                select(func.max(Instance.received_at))
                .join(Series, Series.id == Instance.series_id)
                .where(Series.study_id == study.id)
                .where(
                    (Instance.source_address.is_(None))
                    | (Instance.source_address != OWN_OUTPUT_ADDRESS)
                )
            )
            job = session.scalars(
                select(Job).where(Job.study_id == study.id, Job.state == "done")
            ).one_or_none()
            if job is None:
                return None
            sr_sent = session.scalars(
                select(Delivery.sent_at)
                .join(Output, Output.id == Delivery.output_id)
                .where(Output.job_id == job.id, Output.kind == "sr")
            ).one()
            if sr_sent is None:
                return None
            assert last_received and job.started_at and job.finished_at
            steps: dict[str, float] = defaultdict(float)
            for step in job.steps:
                steps[step["step"]] += float(step["seconds"])
            return {
                "turnaround_s": (sr_sent - last_received).total_seconds(),
                "quiet_and_sweep_s": (job.created_at - last_received).total_seconds(),
                "queue_wait_s": (job.started_at - job.created_at).total_seconds(),
                "job_s": (job.finished_at - job.started_at).total_seconds(),
                "steps_s": dict(sorted(steps.items())),
                "sending_s": (sr_sent - job.finished_at).total_seconds(),
            }
    finally:
        engine.dispose()


def main() -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    orthanc = Orthanc(WORK / "orthanc").start()
    port = free_port()
    env = node_env(WORK / "data", port, orthanc.dicom_port)
    log = (WORK / "node.log").open("wb")
    node = subprocess.Popen([str(ECHO_NODE), "serve"], env=env, stdout=log, stderr=log)
    try:
        wait_listening(port, node)
        runs = [one_run(env, port, orthanc.url, seed) for seed in range(1, RUNS + 1)]
    finally:
        node.terminate()
        node.wait(60)
        orthanc.stop()
    steps = sorted({name for run in runs for name in run["steps_s"]})
    median: dict[str, Any] = {
        "turnaround_s": statistics.median(r["turnaround_s"] for r in runs),
        "quiet_and_sweep_s": statistics.median(r["quiet_and_sweep_s"] for r in runs),
        "queue_wait_s": statistics.median(r["queue_wait_s"] for r in runs),
        "job_s": statistics.median(r["job_s"] for r in runs),
        "sending_s": statistics.median(r["sending_s"] for r in runs),
        "steps_s": {
            name: statistics.median(r["steps_s"].get(name, 0.0) for r in runs) for name in steps
        },
    }
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phantom": "ai.phantom.generate_study defaults (600x800, 2 cycles at 50 frames/s)",
        # With no weights the neural pipelines report model_not_installed at once; with
        # TURNAROUND_MODELS_DIR set, their time shows in the pipeline steps.
        "models_dir": MODELS_DIR or None,
        "backend": BACKEND,
        "quiet_period_s": QUIET_S,
        "sweep_interval_s": SWEEP_S,
        "runs": runs,
        "median": median,
    }
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / ("turnaround-models.json" if MODELS_DIR else "turnaround.json")
    output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"study turnaround (last instance received → SR stored in Orthanc), median of {RUNS}:")
    print(f"  total                 {median['turnaround_s']:7.2f} s")
    print(f"  quiet period + sweep  {median['quiet_and_sweep_s']:7.2f} s")
    print(f"  queue wait            {median['queue_wait_s']:7.2f} s")
    print(f"  job                   {median['job_s']:7.2f} s")
    for name, seconds in median["steps_s"].items():
        print(f"    {name:20s}{seconds:7.2f} s")
    print(f"  sending the SR        {median['sending_s']:7.2f} s")
    return summary


if __name__ == "__main__":
    main()
