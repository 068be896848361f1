"""DIMSE ingest throughput: dcmtk storescu pushing 200 × ~3 MB US clips to dcmtk storescp and
to Echo Node, on loopback, in the same run (issue 3's benchmark).

storescp does not fsync; the node fsyncs every file and commits its row before answering.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
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
    )
    return subprocess.Popen(
        [str(ECHO_NODE), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def measure(name: str, senders: int, start_receiver: object, files: list[Path]) -> Figure:
    size_mb = sum(path.stat().st_size for path in files) / 1e6
    times = []
    for run in range(RUNS):
        out = WORK / f"recv-{name}-{senders}-{run}"
        shutil.rmtree(out, ignore_errors=True)
        port = free_port()
        receiver = start_receiver(port, out)  # type: ignore[operator]
        try:
            wait_listening(port, receiver)
            # Let the receiver settle and check it answers DICOM before the clock starts: every
            # ingest process bound to the shared port, and the node's processing side done
            # loading torch (it starts after the listener, so that a restarted node takes
            # images at once, and its import would otherwise compete with the first seconds).
            time.sleep(SETTLE_S)
            subprocess.run(
                ["echoscu", "-aec", "ECHONODE", "127.0.0.1", str(port)], env=DCMTK_ENV, check=True
            )
            times.append(push(port, files, senders))
        finally:
            receiver.send_signal(signal.SIGTERM)
            try:
                receiver.wait(60)
            except subprocess.TimeoutExpired:
                receiver.kill()
            subprocess.run(["pkill", "-f", f"storescp.*{port}"], check=False)
            shutil.rmtree(out, ignore_errors=True)
    median = statistics.median(times)
    return Figure(name, senders, len(files) / median, size_mb / median, times)


def main() -> list[Figure]:
    files = make_clips(WORK / "clips")
    mean_mb = sum(path.stat().st_size for path in files) / len(files) / 1e6
    print(f"ingest: {len(files)} US multi-frame clips of {mean_mb:.2f} MB, {RUNS} runs each")
    figures = [
        measure("storescp", 1, lambda p, o: storescp(p, o, fork=False), files),
        measure("echo-node", 1, lambda p, o: echo_node(p, o, processes=1), files),
        measure("storescp --fork", 4, lambda p, o: storescp(p, o, fork=True), files),
        # One ingest process per core: more only adds contention (measured 16 img/s with four
        # processes against 26 with two on this 2-core machine).
        measure("echo-node", 4, lambda p, o: echo_node(p, o, processes=CORES), files),
    ]
    ratios = {
        "x1": figures[1].images_per_s / figures[0].images_per_s,
        "x4": figures[3].images_per_s / figures[2].images_per_s,
    }
    print(f"{'receiver':<18}{'senders':>8}{'img/s':>10}{'MB/s':>10}")
    for figure in figures:
        print(
            f"{figure.receiver:<18}{figure.senders:>8}"
            f"{figure.images_per_s:>10.1f}{figure.mb_per_s:>10.1f}"
        )
    print(f"ratio echo-node / storescp, one association: {ratios['x1']:.2f}")
    print(
        f"ratio echo-node ({CORES} ingest processes) / storescp --fork, four senders: "
        f"{ratios['x4']:.2f}"
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
                "ingest_processes_x4": CORES,
                "note": "storescp does not fsync; echo-node fsyncs each file and commits its row",
            },
            indent=2,
        )
    )
    return figures


if __name__ == "__main__":
    main()
