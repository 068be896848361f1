"""The hostile-network probes of issue 16, each a function returning one figure. The tests
assert on them; ``python -m tests.reliability.measure`` prints them for any version of the
node (before and after a change), so they use only settings every version knows.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from tests.reliability import corpus
from tests.reliability.peer import (
    ABORT,
    ASSOCIATE_RQ,
    STRANGER,
    abort_pdu,
    associate,
    associate_rq,
    c_store_status,
    connect,
    pdu,
    read_pdu,
    store_contexts,
    store_pdus,
)

LISTED_AE = "US_ROOM1"


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(OSError):
        action()


def stranger_connections(port: int, each: int = 5) -> list[socket.socket]:
    """``4 * each`` connections from an address allowed_peers does not list, none of which
    completes an A-ASSOCIATE-RQ: connect-and-close, idle, one byte, half an RQ."""
    held = []
    for _ in range(each):
        _quietly(lambda: connect(port, STRANGER).close())
    rq = associate_rq("STRANGER")
    for payload in (b"", rq[:1], rq[: len(rq) // 2]):
        for _ in range(each):
            try:
                sock = connect(port, STRANGER)
                if payload:
                    sock.sendall(payload)
                held.append(sock)
            except OSError:
                pass
    return held


def associations_available(port: int, calling: str = LISTED_AE, limit: int = 64) -> int:
    """How many associations a listed peer can hold open at once right now."""
    opened: list[socket.socket] = []
    try:
        for _ in range(limit):
            try:
                opened.append(associate(port, calling))
            except (ConnectionError, OSError):
                break
        return len(opened)
    finally:
        for sock in opened:
            _quietly(lambda sock=sock: sock.sendall(abort_pdu()))  # type: ignore[misc]
            sock.close()


def slots_held_by_strangers(port: int, max_associations: int = 16) -> int:
    """Association slots the strangers' 20 connections keep from a listed scanner."""
    held = stranger_connections(port)
    try:
        time.sleep(1.0)
        return max_associations - associations_available(port)
    finally:
        for sock in held:
            sock.close()


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def huge_rq_peak_rss_kb(port: int, pid: int, mb_per_socket: int = 200, sockets: int = 2) -> int:
    """Peak RSS of the node while ``sockets`` strangers each declare an A-ASSOCIATE-RQ of
    0xFFFFFFF0 bytes and send ``mb_per_socket`` MB of it."""
    peak = [rss_kb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.02)

    def send() -> None:
        chunk = bytes(1 << 20)
        try:
            with connect(port, STRANGER, timeout=30) as sock:
                sock.sendall(struct.pack(">BBL", ASSOCIATE_RQ, 0, 0xFFFFFFF0))
                for _ in range(mb_per_socket):
                    sock.sendall(chunk)
                time.sleep(0.5)
        except OSError:
            pass  # the node closed the connection: what it should do

    sampler = threading.Thread(target=sample)
    sampler.start()
    senders = [threading.Thread(target=send) for _ in range(sockets)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    time.sleep(0.5)
    done.set()
    sampler.join()
    return peak[0]


def store_raw(port: int, dataset: bytes, sop_instance_uid: str, calling: str = LISTED_AE) -> int:
    """One C-STORE of exactly these data-set bytes; its status, or -1 if the association
    ended without one."""
    try:
        sock = associate(port, calling, contexts=store_contexts())
    except (ConnectionError, OSError):
        return -1
    try:
        for data in store_pdus(dataset, corpus.US_IMAGE, sop_instance_uid):
            sock.sendall(data)
        status = c_store_status(sock)
        _quietly(lambda: sock.sendall(pdu(5, bytes(4))))
        _quietly(lambda: read_pdu(sock))
        return status
    except (ConnectionError, OSError):
        return -1
    finally:
        sock.close()


def truncations_acknowledged(port: int) -> tuple[int, int]:
    """(cuts answered Success, cuts sent) for cuts of a ~2 KB image, half in its last 300
    bytes."""
    instance = corpus.image()
    statuses = [
        store_raw(port, data, instance.sop_instance_uid) for _, data in corpus.cuts(instance)
    ]
    return sum(1 for status in statuses if status == 0x0000), len(statuses)


def bad_inputs(instance: corpus.Instance) -> list[bytes]:
    """The damaged data sets every PHI probe sends."""
    return [
        corpus.name_as_uid(instance),
        corpus.enlarged_uid_length(instance),
        corpus.enlarged_name_length(instance),
        corpus.unknown_vr(instance),
        *(data for _, data in corpus.cuts(instance, 8)),
        *corpus.fuzzed(instance, 12),
    ]


def push_bad_inputs(port: int, http_port: int | None, token: str | None) -> None:
    """Send the bad-input corpus over raw DIMSE and, if an HTTP port is given, STOW-RS."""
    instance = corpus.image()
    for data in bad_inputs(instance):
        store_raw(port, data, instance.sop_instance_uid)
    if http_port is None:
        return
    for data in bad_inputs(instance):
        stow(http_port, token, [part10(instance, data)])


def part10(instance: corpus.Instance, dataset: bytes) -> bytes:
    whole = instance.part10()
    return whole[: len(whole) - len(instance.dataset)] + dataset


def stow(http_port: int, token: str | None, parts: Iterable[bytes]) -> httpx.Response:
    boundary = "reliability-boundary"
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(
        f"http://127.0.0.1:{http_port}/dicom-web/studies", content=body, headers=headers, timeout=60
    )


def phi_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(marker in line for marker in corpus.PHI)]


def aborted_transfers(port: int, count: int = 20, megabytes: int = 2, abort: bool = True) -> None:
    """``count`` associations that send half of a ``megabytes`` MB image and then abort (or,
    ``abort=False``, just drop the connection)."""
    instance = corpus.image(rows=1024, columns=megabytes * 1024)
    pdus = list(store_pdus(instance.dataset, corpus.US_IMAGE, instance.sop_instance_uid))
    for _ in range(count):
        sock = _retrying(lambda: associate(port, LISTED_AE, contexts=store_contexts()))
        try:
            for data in pdus[: len(pdus) // 2]:
                sock.sendall(data)
            if abort:
                sock.sendall(abort_pdu())
        finally:
            sock.close()


def _retrying(action: Callable[[], socket.socket], within: float = 15) -> socket.socket:
    """The node may refuse for a moment while earlier associations end (local limit)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return action()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def abort_answer(sock: socket.socket) -> tuple[int, int] | None:
    """The (source, reason) of an A-ABORT the node sends, or None if it sent none."""
    try:
        answer = read_pdu(sock)
    except (ConnectionError, OSError):
        return None
    return answer.abort_reason if answer.type == ABORT else None
