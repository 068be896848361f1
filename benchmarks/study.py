"""Study time with every model installed: torch eager (the reference) and OpenVINO, one run.

What the issue measures (a worker's job on a 2-core CPU, every model installed with random
weights in the published formats, benchmarks/all_models.py, the A4C segmentation network's head
fitted to the phantom): the 4-clip phantom study and a 60-clip phantom exam (ai.phantom.exam),
each processed by the node's own job path (import → stable job → claim →
echo_node.processing.run_job: decode, views, pipelines, overlays, SR) on a fresh data directory
per run, once per backend, the backends' order alternating between repeats so that a busy
machine weighs on both alike. Per run: wall and CPU seconds of the job,
the split by step, every network pass (model, input shape, count, seconds), the moment the
first value was computed, and each finding's value, compared between the backends.

Why the fitted head: with random weights throughout, the LV segmentation is the same in every
frame, the A4C pipeline finds no beat and runs EchoNet-Dynamic's EF model on every clip start
(19 r2plus1d_18 clips on the full-size 4-clip study) where real weights find the beats and run
it on the beats' clips alone (there, 1). The fitted head (benchmarks/fitted_segmentation.py;
about 4 minutes the first time, then kept with the other models) follows the phantom's LV, so
the run takes the path real weights take. `--random-segmentation` times the old path.
study.json says under "segmentation" which network ran and, for the fitted one, how well it
fits held-out phantom clips; under each run's "a4c", the ED/ES frames found per A4C clip and
LVEF's flags ("averaged_over_beats" or "averaged_over_clip_starts").

Results: benchmarks/results/study.json. `--fast` (small clips, a 12-clip exam, one repeat;
written to study-fast.json, not weighed against the targets) checks that the benchmark works in
a few minutes; the figures that count come from a full run
on a quiet machine (`make bench`). Conversions for OpenVINO are made before the timed runs (as
`echo-node models import` does) and reported apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from ai.models import backends
from ai.models.loader import LoadedModel
from ai.models.registry import Registry
from ai.models.store import ModelStore, NotInstalled
from ai.phantom import generate_study
from ai.phantom.exam import generate_exam
from ai.pipelines.a4c import NAME as A4C_PIPELINE
from ai.pipelines.a4c import SEGMENTATION_MODEL
from ai.result_json import result_from_json
from benchmarks.all_models import install_all
from benchmarks.fitted_segmentation import FIT_RECORD, FITTED_FILE
from echo_node.cli.importer import import_file
from echo_node.jobs import queue
from echo_node.node import open_node
from echo_node.processing import run_job
from echo_node.settings import load_settings
from storage.models import CLIP_RESULT_KEY, FindingRow, JobClip
from storage.queue import utc_now

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "study"
RESULTS = ROOT / "results" / "study.json"
FAST_RESULTS = ROOT / "results" / "study-fast.json"
TARGETS_S = {"study": 60.0, "exam": 600.0}  # issue 14, on 2 CPU cores


class Passes:
    """Every network pass of a run: (model, input shape) → [count, seconds]."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, tuple[int, ...]], list[float]] = defaultdict(lambda: [0, 0.0])

    def add(self, name: str, shape: tuple[int, ...], seconds: float) -> None:
        entry = self.calls[(name, shape)]
        entry[0] += 1
        entry[1] += seconds

    def table(self) -> list[dict[str, Any]]:
        return [
            {"model": name, "input": list(shape), "passes": int(n), "seconds": round(s, 3)}
            for (name, shape), (n, s) in sorted(self.calls.items())
        ]

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.calls.values())


class CountingStore(ModelStore):
    """The node's model store, each network pass timed (the pass itself is unchanged)."""

    passes: Passes

    def get(self, name: str) -> LoadedModel | NotInstalled:
        loaded = super().get(name)
        if isinstance(loaded, NotInstalled):
            return loaded
        inner, passes = loaded.run, self.passes

        def run(batch: torch.Tensor) -> torch.Tensor:
            started = time.perf_counter()
            out = inner(batch)
            if out.is_cuda:  # the pass ends when the GPU is done, not when it is queued
                torch.cuda.synchronize()
            passes.add(name, tuple(batch.shape), time.perf_counter() - started)
            return out

        return dataclasses.replace(loaded, runner=run)


def make_store(
    models: Path, backend: str, device: str, threads: int, registry: Registry | None = None
) -> CountingStore:
    store = CountingStore(models, registry, device=device, threads=threads, backend=backend)
    store.passes = Passes()
    return store


def prepare(store: CountingStore) -> dict[str, Any]:
    """Load every model on the store's backend (converting where needed): seconds, and each
    conversion's recorded difference from torch."""
    started = time.perf_counter()
    models: dict[str, Any] = {}
    for spec in store.registry:
        loaded = store.get(spec.name)
        assert isinstance(loaded, LoadedModel), spec.name
        entry: dict[str, Any] = {"backend": loaded.backend}
        path = backends.cache_path(store.model_dir, spec, loaded.sha256).with_suffix(".json")
        if loaded.backend == backends.OPENVINO and path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            entry.update(
                relative_difference=record["relative_difference"],
                conversion_s=record["seconds"],
            )
        models[spec.name] = entry
    return {"load_s": round(time.perf_counter() - started, 1), "models": models}


@contextmanager
def cpu_clock() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds (all threads of this process) of the block."""
    times: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield times
    times["wall_s"] = time.perf_counter() - wall
    times["cpu_s"] = time.process_time() - cpu


def run_once(paths: list[Path], store: CountingStore, data_dir: Path) -> dict[str, Any]:
    """One study through a fresh node's job path; its figures and findings."""
    shutil.rmtree(data_dir, ignore_errors=True)
    environ = {"ECHO_NODE_DATA_DIR": str(data_dir), "ECHO_NODE_STABLE_AFTER_S": "0"}
    node = open_node(load_settings(environ=environ))
    try:
        for path in paths:
            assert import_file(node.ingestor, path).outcome == "stored", path
        with node.sessions.begin() as session:
            queue.enqueue_stable_studies(session, node.settings, utc_now())
        with node.sessions.begin() as session:
            job = queue.claim_job(session, "bench", node.settings, utc_now())
            assert job is not None
            job_id = job.id
        store.passes = Passes()
        with cpu_clock() as clock:
            outcome = run_job(node, job_id, store)
        with node.sessions() as session:
            rows = session.scalars(select(FindingRow).where(FindingRow.job_id == job_id)).all()
            findings = {
                f"{r.sop_instance_uid}|{r.pipeline}|{r.name}": [r.value, r.frame] for r in rows
            }
            a4c = a4c_paths(session, job_id)
    finally:
        node.engine.dispose()
    steps: dict[str, float] = defaultdict(float)
    first_values_s, elapsed = None, 0.0
    for step in outcome.steps:
        steps[step["step"]] += float(step["seconds"])
        elapsed += float(step["seconds"])
        ok = step["step"].startswith("pipeline:") and step.get("status") == "ok"
        if first_values_s is None and ok:
            first_values_s = elapsed
    return {
        "state": outcome.state,
        "job_wall_s": round(clock["wall_s"], 2),
        "job_cpu_s": round(clock["cpu_s"], 2),
        "network_s": round(store.passes.seconds, 2),
        "first_values_s": None if first_values_s is None else round(first_values_s, 2),
        "steps_s": {name: round(seconds, 2) for name, seconds in sorted(steps.items())},
        "passes": store.passes.table(),
        "findings": findings,
        "a4c": a4c,
    }


def a4c_paths(session: Session, job_id: int) -> dict[str, dict[str, Any]]:
    """Per A4C clip, the phases the segmentation found and how LVEF was averaged: whether the
    EF model ran on the beats' clips ("averaged_over_beats") or on every clip start."""
    rows = session.execute(
        select(JobClip.sop_instance_uid, JobClip.detail).where(JobClip.job_id == job_id)
    ).all()
    paths: dict[str, dict[str, Any]] = {}
    for uid, detail in rows:
        if CLIP_RESULT_KEY not in detail:
            continue
        clip = result_from_json(detail[CLIP_RESULT_KEY])
        for result in (p for p in clip.pipelines if p.pipeline == A4C_PIPELINE):
            series = result.series
            lvef = [f for f in result.findings if f.name == "LVEF"]
            paths[uid] = {
                "ED_frames": list(series.get("ED_frames", ())),
                "ES_frames": list(series.get("ES_frames", ())),
                "LVEF_beat_start_frames": list(series.get("LVEF_beat_start_frames", ())),
                "LVEF_flags": list(lvef[0].flags) if lvef else None,
            }
    return paths


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each finding's largest relative difference between the backends' runs, and the findings
    measured on another frame (a phase found elsewhere: on a flat curve, such as random weights
    give, a difference of 1e-6 can move a peak)."""
    names = sorted(runs)
    if len(names) < 2:
        return {}
    first, *others = (runs[name]["findings"] for name in names)
    worst, missing, moved = 0.0, [], []
    for key, (value, frame) in first.items():
        for other in others:
            if key not in other:
                missing.append(key)
                continue
            worst = max(worst, abs(other[key][0] - value) / max(abs(value), 1e-9))
            if other[key][1] != frame:
                moved.append(key)
    return {
        "largest_relative_difference": worst,
        "only_in_one_backend": sorted(set(missing)),
        "on_another_frame": sorted(set(moved)),
    }


def summary(name: str, repeats: list[dict[str, dict[str, Any]]], fast: bool) -> dict[str, Any]:
    """Median over repeats per backend, beside the target (None in fast mode: small clips)."""
    out: dict[str, Any] = {"target_s": TARGETS_S[name], "backends": {}}
    for backend in repeats[0]:
        runs = [repeat[backend] for repeat in repeats]
        median = {
            key: statistics.median(run[key] for run in runs)
            for key in ("job_wall_s", "job_cpu_s", "network_s")
        }
        firsts = [run["first_values_s"] for run in runs if run["first_values_s"] is not None]
        median["first_values_s"] = statistics.median(firsts) if firsts else None
        median["met"] = None if fast else median["job_wall_s"] <= TARGETS_S[name]
        out["backends"][backend] = median
    out["findings_between_backends"] = compare(repeats[-1])
    return out


def machine(threads: int, device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "device": device,
        "cuda": torch.cuda.is_available(),
        "load_average": list(os.getloadavg()),
    }
    if backends.openvino_available():
        import openvino as ov

        info["openvino"] = str(ov.get_version())
    return info


def segmentation_weights(models: Path, registry: Registry) -> dict[str, Any]:
    """Which A4C segmentation network ran: the file, and how well a fitted head fits."""
    spec = registry.get(SEGMENTATION_MODEL)
    if spec.file != FITTED_FILE:
        return {"weights": "random", "file": spec.file}
    record = json.loads((models / FIT_RECORD).read_text(encoding="utf-8"))
    return {"weights": "head fitted to the phantom", "file": spec.file, "fit": record}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--fast", action="store_true", help="small clips, 12-clip exam")
    parser.add_argument("--backends", default="torch,openvino")
    parser.add_argument("--device", default="auto", help="torch's device: cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--exam-clips", type=int, default=None)
    parser.add_argument("--skip-exam", action="store_true")
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--random-segmentation",
        action="store_true",
        help="the A4C segmentation network with random weights throughout (no beat is found, "
        "so the EF model runs on every clip start) instead of its head fitted to the phantom",
    )
    args = parser.parse_args(argv)
    # A fast run checks the path, on small clips: its figures go beside the full run's, never
    # over them, and are not weighed against the targets (which are for full-size clips).
    args.output = args.output or (FAST_RESULTS if args.fast else RESULTS)
    repeats = args.repeats or (1 if args.fast else 2)
    clip_size = {"rows": 300, "columns": 400, "cycles": 1, "frame_rate": 25.0} if args.fast else {}
    exam_clips = args.exam_clips or (12 if args.fast else 60)
    names = [b for b in args.backends.split(",") if b]
    if backends.OPENVINO in names and not backends.openvino_available():
        names.remove(backends.OPENVINO)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "fast" if args.fast else "full",
        "machine": machine(args.threads, args.device),
    }
    models = ROOT / "work" / "models"
    registry = install_all(models, fitted_segmentation=not args.random_segmentation)
    result["segmentation"] = segmentation_weights(models, registry)
    stores: dict[str, CountingStore] = {}
    result["prepare"] = {}
    for backend in names:
        # OpenVINO always runs on the CPU; torch on the device asked for (CUDA when there).
        device = "cpu" if backend == backends.OPENVINO else args.device
        stores[backend] = make_store(models, backend, device, args.threads, registry)
        result["prepare"][backend] = prepare(stores[backend])

    shutil.rmtree(WORK, ignore_errors=True)
    studies: dict[str, list[Path]] = {}
    if not args.skip_study:
        studies["study"] = generate_study(WORK / "phantom-study", 1, **clip_size)  # type: ignore[arg-type]
    if not args.skip_exam:
        studies["exam"] = generate_exam(WORK / "phantom-exam", 2, exam_clips, **clip_size)  # type: ignore[arg-type]
    result["studies"] = {}
    for name, paths in studies.items():
        runs = []
        for repeat in range(repeats):
            order = names if repeat % 2 == 0 else names[::-1]
            runs.append(
                {
                    backend: run_once(paths, stores[backend], WORK / f"node-{name}-{backend}")
                    for backend in order
                }
            )
            for backend in order:
                run = runs[-1][backend]
                print(
                    f"{name} ({len(paths)} clips) {backend}: job {run['job_wall_s']} s wall, "
                    f"{run['job_cpu_s']} s CPU, networks {run['network_s']} s"
                )
        result["studies"][name] = {
            "clips": len(paths),
            "summary": summary(name, runs, args.fast),
            "runs": runs,
        }
    result["machine"]["load_average_after"] = list(os.getloadavg())
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, study in result["studies"].items():
        print(f"{name}: {study['clips']} clips, target {TARGETS_S[name]:.0f} s")
        for backend, figures in study["summary"]["backends"].items():
            print(
                f"  {backend:9s} job {figures['job_wall_s']:8.1f} s  "
                f"CPU {figures['job_cpu_s']:8.1f} s  networks {figures['network_s']:8.1f} s  "
                "first value "
                f"{figures['first_values_s']} s  "
                + {True: "met", False: "NOT met", None: "(fast mode: no target)"}[figures["met"]]
            )
    print(f"wrote {args.output} in {result['total_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
