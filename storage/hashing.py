"""sha256 of files computed from the bytes as they are written, on a thread of their own.

Received data sets are hashed while they arrive instead of being read back once complete:
the receiving thread hands each piece over and goes on reading the network while this thread
hashes (hashlib releases the GIL on large updates, so the two run on two cores). One thread
serves every stream of a process, each stream in order; hashing runs at about 1.6 GB/s here,
far above what one process receives. The thread ends after a few idle seconds and is started
again by the next piece, so nothing needs stopping.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from typing import TYPE_CHECKING

from storage.files import FileDigest

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

logger = logging.getLogger(__name__)

_END = object()
# Bytes gathered before they are handed to the hashing thread.
_BATCH_BYTES = 512 * 1024
# A stream whose last piece is not hashed within this long is given up (its file is then read
# instead): only a thread that died could make it wait so long.
_FINISH_TIMEOUT_S = 120.0


class Hasher:
    """The hashing thread of a process (or of whatever owns it); hands out streams."""

    def __init__(self, idle_s: float = 5.0) -> None:
        self._idle_s = idle_s
        self._pieces: queue.SimpleQueue[tuple[StreamDigest, object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def stream(self) -> StreamDigest:
        return StreamDigest(self)

    def _put(self, stream: StreamDigest, batch: object) -> None:
        self._pieces.put((stream, batch))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                stream, batch = self._pieces.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if self._pieces.empty():
                        self._thread = None
                        return
                continue
            stream._take(batch)

    @property
    def running(self) -> bool:
        """Whether the thread is up (it ends once idle)."""
        with self._lock:
            return self._thread is not None


class StreamDigest:
    """sha256 and size of the bytes given to ``update``, in order.

    A piece given to ``update`` must not change afterwards (it is hashed later, on the
    hashing thread): bytes, or a view of a buffer that is not reused. ``finish`` waits for
    every piece and returns the digest; ``discard`` drops what is still queued. After either,
    ``update`` raises and both do nothing more.
    """

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._sha = hashlib.sha256()
        self._size = 0
        self._ended = False
        self._failed = False
        self._done = threading.Event()
        # Pieces are handed over in batches: fewer hand-overs, fewer GIL switches.
        self._batch: list[ReadableBuffer] = []
        self._batched = 0

    def update(self, data: ReadableBuffer) -> None:
        if self._ended:
            raise ValueError("digest already finished or discarded")
        self._batch.append(data)
        self._batched += memoryview(data).nbytes
        if self._batched >= _BATCH_BYTES:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch, self._batched = self._batch, [], 0
            self._hasher._put(self, batch)

    def finish(self) -> FileDigest | None:
        """The digest of everything given; None if it was discarded or could not be made."""
        self._end()
        if not self._done.wait(_FINISH_TIMEOUT_S):
            logger.error("sha256 of a received file not computed in time; the file is read")
            return None
        if self._failed:
            return None
        return FileDigest(self._sha.hexdigest(), self._size)

    def discard(self) -> None:
        if not self._ended:
            self._failed = True
            self._batch = []
            self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._hand_over()
            self._hasher._put(self, _END)

    def _take(self, batch: object) -> None:
        """On the hashing thread."""
        if batch is _END:
            self._done.set()
            return
        if self._failed:
            return
        try:
            for piece in batch:  # type: ignore[attr-defined]
                view = memoryview(piece)
                self._sha.update(view)
                self._size += view.nbytes
        except (TypeError, ValueError, BufferError) as exc:  # not a buffer, or released
            logger.error(
                "a piece of a received file could not be hashed; the file is read instead",
                extra={"error": type(exc).__name__},
            )
            self._failed = True
