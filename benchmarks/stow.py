"""STOW-RS ingest: the same 200 × ~3 MB clips as the DIMSE benchmark, posted to Echo Node's
DICOMweb service and to Orthanc's (DICOMweb plugin) in the same run: one request of many
parts, then four clients in parallel (issue 7's benchmark).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.ingest import (
    DISK_FLOOR_ENV,
    ECHO_NODE,
    RESULTS,
    RUNS,
    WORK,
    free_port,
    make_clips,
)
from tests.orthanc import Orthanc


def multipart(files: list[Path], boundary: str) -> Iterator[bytes]:
    for path in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def post(url: str, files: list[Path], token: str | None) -> None:
    boundary = uuid.uuid4().hex
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.post(url, content=multipart(files, boundary), headers=headers, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"STOW-RS to {url}: HTTP {response.status_code} {response.text[:300]}")


def timed_posts(url: str, files: list[Path], clients: int, token: str | None) -> float:
    chunks = [files[i::clients] for i in range(clients)]
    errors: list[BaseException] = []

    def run(chunk: list[Path]) -> None:
        try:
            post(url, chunk, token)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited at start")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def node_env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_NODE_")}
    env.update(
        ECHO_NODE_DATA_DIR=str(data),
        ECHO_NODE_DIMSE_PORT=str(free_port()),
        ECHO_NODE_HTTP_PORT=str(port),
        ECHO_NODE_BIND="127.0.0.1",
        ECHO_NODE_LOG_LEVEL="WARNING",
        **DISK_FLOOR_ENV,
        ECHO_NODE_PROCESS_ENABLED="false",
    )
    return env


def run_node(files: list[Path], clients: int, run: int) -> float:
    data = WORK / f"stow-node-{clients}-{run}"
    shutil.rmtree(data, ignore_errors=True)
    port = free_port()
    env = node_env(data, port)
    added = subprocess.run(
        [str(ECHO_NODE), "tokens", "add", "--scope", "write"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = added.stdout.strip().splitlines()[-1]
    process = subprocess.Popen(
        [str(ECHO_NODE), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/dicom-web"
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json", process)
        return timed_posts(f"{base}/studies", files, clients, token)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def run_orthanc(files: list[Path], clients: int, run: int) -> float:
    root = WORK / f"stow-orthanc-{clients}-{run}"
    shutil.rmtree(root, ignore_errors=True)
    orthanc = Orthanc(root).start()
    try:
        return timed_posts(f"{orthanc.url}/dicom-web/studies", files, clients, None)
    finally:
        orthanc.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> dict[str, float]:
    files = make_clips(WORK / "clips")
    figures: dict[str, float] = {}
    for name, runner in (("echo-node", run_node), ("orthanc", run_orthanc)):
        for clients in (1, 4):
            times = [runner(files, clients, run) for run in range(RUNS)]
            figures[f"{name} x{clients}"] = len(files) / statistics.median(times)
    print(f"STOW-RS: {len(files)} clips, one request per client, median of {RUNS}")
    for key, value in figures.items():
        print(f"{key:<16}{value:>10.1f} img/s")
    for clients in (1, 4):
        ratio = figures[f"echo-node x{clients}"] / figures[f"orthanc x{clients}"]
        print(f"ratio echo-node / Orthanc STOW-RS, {clients} client(s): {ratio:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stow.json").write_text(json.dumps({"images_per_s": figures}, indent=2))
    return figures


if __name__ == "__main__":
    main()
