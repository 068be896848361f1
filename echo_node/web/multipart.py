"""An incremental multipart/related parser (RFC 2046 §5.1, RFC 2387) that never holds a part.

Bytes are fed as they arrive; part contents go to the sink at once, so memory stays at one
network chunk plus a delimiter's length whatever the size of the parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from storage.files import FileStore

# Part headers larger than this are not a DICOMweb client's; refusing them bounds memory.
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart; the message says where."""


class TruncatedPart(MultipartError):
    """The body ended inside a part; the sink was told (``end(False)``)."""


class PartSink(Protocol):
    def begin(self, headers: dict[str, str]) -> None: ...

    def data(self, chunk: bytes) -> None: ...

    def end(self, complete: bool) -> None:
        """``complete`` is False when the body stopped before the part's closing delimiter."""


@dataclass
class ReceivedPart:
    path: Path
    headers: dict[str, str]
    complete: bool


@dataclass
class TempFileSink:
    """Writes each part to its own file in the store's tmp/ directory (``suffix`` says whose:
    STOW-RS, a WADO-RS retrieval); the finished parts wait in ``done`` to be handed on."""

    store: FileStore
    suffix: str
    done: list[ReceivedPart] = field(default_factory=list)
    _handle: IO[bytes] | None = None
    _current: ReceivedPart | None = None

    def begin(self, headers: dict[str, str]) -> None:
        path = self.store.new_temp_path(self.suffix)
        self._current = ReceivedPart(path, headers, complete=False)
        self._handle = path.open("wb")

    def data(self, chunk: bytes) -> None:
        assert self._handle is not None
        self._handle.write(chunk)

    def end(self, complete: bool) -> None:
        assert self._handle is not None and self._current is not None
        self._handle.close()
        self._current.complete = complete
        self.done.append(self._current)
        self._handle = self._current = None

    def discard(self) -> None:
        """Remove what was not handed on (the peer gone): unacknowledged, so not kept."""
        if self._handle is not None and self._current is not None:
            self._handle.close()
            self._current.path.unlink(missing_ok=True)
        for part in self.done:
            part.path.unlink(missing_ok=True)
        self.done.clear()


class MultipartParser:
    def __init__(self, boundary: str, sink: PartSink) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("boundary must be 1-200 characters (RFC 2046)")
        self._dash_boundary = b"--" + boundary.encode("latin-1")
        self._delimiter = b"\r\n" + self._dash_boundary
        self._sink = sink
        self._buffer = bytearray()
        self._state = "preamble"
        self.parts = 0

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> None:
        if self._state == "done":
            return  # the epilogue is ignored (RFC 2046)
        self._buffer += data
        while self._step():
            pass

    def close(self) -> None:
        """The body ended; raise MultipartError if it ended somewhere it should not."""
        if self._state == "body":
            if self._buffer:
                self._sink.data(bytes(self._buffer))
            self._buffer.clear()
            self._sink.end(False)
            self._state = "done"
            raise TruncatedPart("body ended inside a part (no closing boundary)")
        if self._state == "preamble":
            raise MultipartError("no part found: the body does not contain the boundary")
        if self._state in ("headers", "after_delimiter"):
            raise MultipartError("body ended inside part headers")

    def _step(self) -> bool:
        """Advance by one state change if the buffer allows; False when more bytes are needed."""
        if self._state == "preamble":
            return self._preamble()
        if self._state == "after_delimiter":
            return self._after_delimiter()
        if self._state == "headers":
            return self._headers()
        if self._state == "body":
            return self._body()
        return False

    def _preamble(self) -> bool:
        buffer = self._buffer
        if buffer.startswith(self._dash_boundary):
            index = 0
        else:
            index = buffer.find(self._delimiter)
            if index < 0:
                del buffer[: max(0, len(buffer) - len(self._delimiter))]
                return False
            index += 2
        del buffer[: index + len(self._dash_boundary)]
        self._state = "after_delimiter"
        return True

    def _after_delimiter(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer.startswith(b"--"):
            self._state = "done"
            buffer.clear()
            return False
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise MultipartError("garbage after a boundary delimiter")
            return False
        if buffer[:line_end].strip(b" \t"):
            raise MultipartError("garbage after a boundary delimiter")
        del buffer[: line_end + 2]
        self._state = "headers"
        return True

    def _headers(self) -> bool:
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            end, skip = 0, 2  # a part with no headers
        else:
            end = buffer.find(b"\r\n\r\n")
            skip = 4
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise MultipartError("part headers too long")
                return False
        headers: dict[str, str] = {}
        for line in bytes(buffer[:end]).decode("latin-1").split("\r\n"):
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise MultipartError(f"malformed part header line in part {self.parts + 1}")
            headers[name.strip().lower()] = value.strip()
        del buffer[: end + skip]
        self.parts += 1
        self._sink.begin(headers)
        self._state = "body"
        return True

    def _body(self) -> bool:
        buffer = self._buffer
        index = buffer.find(self._delimiter)
        if index < 0:
            # Keep a possible partial delimiter at the end for the next chunk.
            keep = len(self._delimiter) - 1
            if len(buffer) > keep:
                self._sink.data(bytes(buffer[: len(buffer) - keep]))
                del buffer[: len(buffer) - keep]
            return False
        if index:
            self._sink.data(bytes(buffer[:index]))
        del buffer[: index + len(self._delimiter)]
        self._sink.end(True)
        self._state = "after_delimiter"
        return True
