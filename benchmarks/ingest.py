"""DIMSE ingest throughput: dcmtk storescu pushing 200 × ~3 MB US clips to dcmtk storescp and
to Echo Node, on loopback, in the same run (issue 3's benchmark), in interleaved rounds.

storescp does not fsync; the node fsyncs every file and commits its row before answering.
Every run is checked once its receiver has stopped, or the benchmark fails: storescp holds a
file for every instance sent; the node holds a row for every instance sent, the row's file,
with the row's sha256, named after it, and nothing in tmp/ or quarantine/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
RESULTS = ROOT / "results"
ECHO_NODE = Path(sys.executable).parent / "echo-node"
COUNT = 200
FRAMES = 60
PDU = "131072"
RUNS = 3
SETTLE_S = 10.0
CORES = os.cpu_count() or 1
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass(frozen=True)
class Figure:
    receiver: str
    senders: int
    images_per_s: float
    mb_per_s: float
    runs: list[float]


def make_clips(out: Path) -> list[Path]:
    """COUNT re-UIDed copies of the first FRAMES frames of pydicom-data's JPEG US clip."""
    existing = sorted(out.glob("clip*.dcm"))
    if len(existing) == COUNT:
        return existing
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    source = dcmread(get_testdata_file("color3d_jpeg_baseline.dcm"))
    frames = list(generate_frames(source.PixelData, number_of_frames=source.NumberOfFrames))
    source.PixelData = encapsulate(frames[:FRAMES])
    source.NumberOfFrames = FRAMES
    source.StudyInstanceUID = generate_uid()
    source.SeriesInstanceUID = generate_uid()
    paths = []
    for index in range(COUNT):
        source.SOPInstanceUID = generate_uid()
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        path = out / f"clip{index:03d}.dcm"
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("receiver exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


def push(port: int, files: list[Path], senders: int) -> float:
    """Seconds for `senders` storescu processes to push `files` (split evenly)."""
    chunks = [files[i::senders] for i in range(senders)]
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                "storescu",
                "-xy",
                "-pdu",
                PDU,
                "-aec",
                "ECHONODE",
                "127.0.0.1",
                str(port),
                *map(str, chunk),
            ],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for chunk in chunks
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode(errors='replace')[-500:]}")
    return time.perf_counter() - start


def storescp(port: int, out: Path, fork: bool) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["storescp", "-pdu", PDU, "+xa", "-od", str(out)]
    if fork:
        args.append("--fork")
    return subprocess.Popen(
        [*args, str(port)], env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# The watermark check runs on every association as in production, with a floor the clips fit
# above: a benchmark on a developer's disk fuller than the default 10 % / 5 GB free
# (config/default.toml) would otherwise measure refusals.
DISK_FLOOR_ENV = {"ECHO_NODE_DISK_MIN_FREE_PERCENT": "0", "ECHO_NODE_DISK_MIN_FREE_GB": "2"}


def echo_node(port: int, data: Path, processes: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    env.update(
        ECHO_NODE_DATA_DIR=str(data),
        ECHO_NODE_DIMSE_PORT=str(port),
        ECHO_NODE_BIND="127.0.0.1",
        ECHO_NODE_HTTP_ENABLED="false",
        ECHO_NODE_LOG_LEVEL="WARNING",
        ECHO_NODE_MAX_PDU_SIZE=PDU,
        ECHO_NODE_INGEST_PROCESSES=str(processes),
        **DISK_FLOOR_ENV,
    )
    return subprocess.Popen(
        [str(ECHO_NODE), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@dataclass(frozen=True)
class Receiver:
    name: str
    senders: int
    start: Callable[[int, Path], subprocess.Popen[bytes]]
    check: Callable[[Path, dict[str, Path]], None]


def check_storescp(out: Path, sent: dict[str, Path]) -> None:
    """Every sent instance arrived: one file per SOP Instance UID, no more."""
    received = [
        str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        for path in out.rglob("*")
        if path.is_file()
    ]
    if sorted(received) != sorted(sent):
        raise RuntimeError(f"storescp holds {len(received)} files for {len(sent)} sent instances")


def check_echo_node(out: Path, sent: dict[str, Path]) -> None:
    """What the node acknowledged is what it holds: a row for every sent instance, its file
    present with the sha256 of the row, the file named after it, and nothing else left."""
    with sqlite3.connect(out / "echo-node.db") as db:
        rows = db.execute("SELECT sop_instance_uid, path, sha256, size FROM instances").fetchall()
    indexed = {sop: (path, sha, size) for sop, path, sha, size in rows}
    if len(rows) != len(sent) or indexed.keys() != sent.keys():
        raise RuntimeError(f"the node indexed {len(rows)} rows for {len(sent)} sent instances")
    for sop, (path, sha, size) in indexed.items():
        stored = out / path
        content = stored.read_bytes()  # raises if the file is missing
        if hashlib.sha256(content).hexdigest() != sha or len(content) != size:
            raise RuntimeError(f"{path}: the file's sha256 or size differs from its row")
        if stored.name != f"{sop}.{sha[:16]}.dcm":
            raise RuntimeError(f"{path}: the file name does not carry its UID and sha256")
    # Files only: torch, loaded by the node's processing side, keeps a cache directory in
    # the temp directory, which the node points at its tmp/.
    kept = [*(out / "tmp").iterdir(), *(out / "quarantine").iterdir()]
    leftovers = [path for path in kept if path.is_file()]
    if leftovers:
        raise RuntimeError(f"the node left {len(leftovers)} files in tmp/ or quarantine/")


def run_once(receiver: Receiver, files: list[Path], sent: dict[str, Path], label: str) -> float:
    """Seconds to push every file to a freshly started receiver, checked afterwards."""
    out = WORK / f"recv-{label}"
    shutil.rmtree(out, ignore_errors=True)
    port = free_port()
    process = receiver.start(port, out)
    try:
        wait_listening(port, process)
        # Let the receiver settle and check it answers DICOM before the clock starts: every
        # ingest process bound to the shared port, and the node's processing side done
        # loading torch (it starts after the listener, so that a restarted node takes
        # images at once, and its import would otherwise compete with the first seconds).
        time.sleep(SETTLE_S)
        subprocess.run(
            ["echoscu", "-aec", "ECHONODE", "127.0.0.1", str(port)], env=DCMTK_ENV, check=True
        )
        seconds = push(port, files, receiver.senders)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        subprocess.run(["pkill", "-f", f"storescp.*{port}"], check=False)
    try:
        receiver.check(out, sent)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds


def measure(receivers: list[Receiver], files: list[Path]) -> list[list[float]]:
    """RUNS interleaved rounds: each round runs every receiver once, so a change in the
    machine's load (other jobs share it) falls on all of them alike. Seconds per receiver,
    per round."""
    sent = {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): path for path in files}
    times: list[list[float]] = [[] for _ in receivers]
    for run in range(RUNS):
        for index, receiver in enumerate(receivers):
            label = f"{receiver.name.replace(' ', '')}-{receiver.senders}-{run}"
            times[index].append(run_once(receiver, files, sent, label))
    return times


def main() -> list[Figure]:
    files = make_clips(WORK / "clips")
    size_mb = sum(path.stat().st_size for path in files) / 1e6
    mean_mb = size_mb / len(files)
    print(
        f"ingest: {len(files)} US multi-frame clips of {mean_mb:.2f} MB, {RUNS} interleaved "
        "rounds, every run checked"
    )
    receivers = [
        Receiver("storescp", 1, lambda p, o: storescp(p, o, fork=False), check_storescp),
        Receiver("echo-node", 1, lambda p, o: echo_node(p, o, processes=1), check_echo_node),
        Receiver("storescp --fork", 4, lambda p, o: storescp(p, o, fork=True), check_storescp),
        # The default: one ingest process per core (more only adds contention, measured 16
        # img/s with four processes against 26 with two on this 2-core machine).
        Receiver("echo-node", 4, lambda p, o: echo_node(p, o, processes=0), check_echo_node),
    ]
    times = measure(receivers, files)
    figures = [
        Figure(
            receiver.name,
            receiver.senders,
            len(files) / statistics.median(runs),
            size_mb / statistics.median(runs),
            runs,
        )
        for receiver, runs in zip(receivers, times, strict=True)
    ]
    # Per round: the node's rate over the reference's in that same round.
    per_round = {
        "x1": [scp / node for node, scp in zip(times[1], times[0], strict=True)],
        "x4": [scp / node for node, scp in zip(times[3], times[2], strict=True)],
    }
    ratios = {
        "x1": figures[1].images_per_s / figures[0].images_per_s,
        "x4": figures[3].images_per_s / figures[2].images_per_s,
    }
    print(f"{'receiver':<18}{'senders':>8}{'img/s':>10}{'MB/s':>10}   img/s per round")
    for figure in figures:
        rounds = " ".join(f"{len(files) / seconds:6.1f}" for seconds in figure.runs)
        print(
            f"{figure.receiver:<18}{figure.senders:>8}"
            f"{figure.images_per_s:>10.1f}{figure.mb_per_s:>10.1f}   {rounds}"
        )
    spread = {
        key: " ".join(f"{value:.2f}" for value in values) for key, values in per_round.items()
    }
    print(
        f"ratio echo-node / storescp, one association: {ratios['x1']:.2f} "
        f"(per round {spread['x1']})"
    )
    print(
        f"ratio echo-node ({CORES} ingest processes) / storescp --fork, four senders: "
        f"{ratios['x4']:.2f} (per round {spread['x4']})"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "clips": len(files),
                "clip_mb": mean_mb,
                "figures": [asdict(figure) for figure in figures],
                "ratios": ratios,
                "ratios_per_round": per_round,
                "ingest_processes_x4": CORES,
                "checked": "every run: a row and a file for every instance sent, the file's "
                "sha256 equal to the row's and in its name; storescp: every instance's file",
                "note": "storescp does not fsync; echo-node fsyncs each file and commits its row",
            },
            indent=2,
        )
        + "\n"
    )
    return figures


if __name__ == "__main__":
    main()
