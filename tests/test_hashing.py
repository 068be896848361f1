"""Hashing as bytes are written: the same sha256 as reading the file, nothing left running."""

from __future__ import annotations

import hashlib
import os
import time

from storage.hashing import Hasher


def _wait_idle(hasher: Hasher, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while hasher.running and time.monotonic() < deadline:
        time.sleep(0.01)
    return not hasher.running


def test_streams_hash_what_they_are_given_in_order() -> None:
    hasher = Hasher(idle_s=0.05)
    data = os.urandom(3_000_000)
    buffer = bytearray(data)
    first, second = hasher.stream(), hasher.stream()
    # Interleaved streams, pieces of every size (bytes and views of a buffer), some over the
    # hand-over batch, some under.
    offset = 0
    for size in (132, 7, 131_072, 600_000, 1, 900_000, 65_536):
        first.update(memoryview(buffer)[offset : offset + size])
        second.update(data[offset : offset + size])
        offset += size
    first.update(memoryview(buffer)[offset:])
    second.update(data[offset:])
    expected = hashlib.sha256(data).hexdigest()
    for stream in (first, second):
        digest = stream.finish()
        assert digest is not None
        assert (digest.sha256, digest.size) == (expected, len(data))
    empty = hasher.stream().finish()
    assert empty is not None and empty.sha256 == hashlib.sha256(b"").hexdigest()
    assert _wait_idle(hasher), "the hashing thread ends once idle"


def test_a_discarded_stream_gives_no_digest_and_holds_nothing() -> None:
    hasher = Hasher(idle_s=0.05)
    stream = hasher.stream()
    stream.update(os.urandom(2_000_000))
    stream.discard()
    assert stream.finish() is None
    stream.discard()  # twice is nothing
    try:
        stream.update(b"more")
    except ValueError:
        pass
    else:
        raise AssertionError("update after discard must raise")
    assert _wait_idle(hasher)
    # The thread starts again for the next stream.
    again = hasher.stream()
    again.update(b"abc")
    digest = again.finish()
    assert digest is not None and digest.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_a_piece_that_is_not_bytes_fails_the_stream_not_the_thread() -> None:
    hasher = Hasher(idle_s=0.05)
    broken = hasher.stream()
    broken._hasher._put(broken, [object()])  # what update() never lets through
    assert broken.finish() is None
    fine = hasher.stream()
    fine.update(b"x" * 10)
    digest = fine.finish()
    assert digest is not None and digest.size == 10
