"""Limits on the HTTP service's connections: how long a client may take to send a request's
headers and its body, and how many connections may be open at once.

uvicorn closes a connection that idles after a response (``timeout_keep_alive``), but not one
that never completes its first request's headers, nor a request whose declared body never
comes: each holds a descriptor for ever, and enough of them (1,100 against systemd's default
of 1,024) leave none for C-STORE either. ``LimitedH11Protocol`` is uvicorn's own HTTP/1.1
protocol class (uvicorn.Config's ``http`` takes a class) with

- a header deadline: from the connection (or the end of the previous response) the request
  line and headers must be complete within ``header_timeout_s``, however they trickle in;
- a body deadline: while the node waits for more of a request body, ``body_timeout_s`` without
  a byte ends the connection (not while the node itself holds back reading);
- a connection cap: beyond ``max_connections`` open ones, a new connection is answered
  "503 Service Unavailable" and closed before anything is read.

``connection_cap`` keeps the cap below the process's descriptor limit, leaving DIMSE room.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
    b"Retry-After: 5\r\n\r\n"
)
# Refused connections are logged at most this often (a flood would flood the log too).
_LOG_EVERY_S = 10.0
# Descriptors kept for everything but HTTP: the database, logs, models, files being written,
# and per DIMSE association (socket, temp file) plus the connections still being admitted.
_RESERVED_BASE = 256
_RESERVED_PER_ASSOCIATION = 8
_MIN_CONNECTIONS = 16


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


def connection_cap(wanted: int, max_associations: int) -> int:
    """``wanted`` (http_max_connections), lowered to leave DIMSE its descriptors.

    The soft descriptor limit is first raised to the hard one (systemd's default is 1024 soft
    and far more hard; deploy/echo-node.service sets LimitNOFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = soft - _RESERVED_BASE - _RESERVED_PER_ASSOCIATION * max_associations
    cap = max(_MIN_CONNECTIONS, min(wanted, room))
    if cap < wanted:
        logger.warning(
            "http_max_connections lowered to stay below the descriptor limit",
            extra={"http_max_connections": cap, "descriptor_limit": soft},
        )
    return cap


class LimitedH11Protocol(H11Protocol):  # type: ignore[misc]
    """uvicorn's HTTP/1.1 protocol with the limits above; ``limits`` is set on a subclass
    (``protocol_class``), since uvicorn makes each protocol with its own arguments only."""

    limits: ClassVar[HttpLimits]
    _refused_log: ClassVar[list[float]]  # [last time logged, refusals since]
    _timer: asyncio.TimerHandle | None = None
    _refused = False

    def connection_made(self, transport: Any) -> None:
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(_BUSY)
            transport.close()
            self._log_refusal()
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        waiting_for_headers = self.conn.their_state is h11.IDLE
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.limits.body_timeout_s)  # restarted by every piece of the body
        elif state is h11.IDLE:
            if not waiting_for_headers or self._timer is None:
                self._arm(self.limits.header_timeout_s)
        else:  # the request is in: the node works, then answers
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.limits.header_timeout_s)  # for the next request on the connection

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, self._expired, delay)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, delay: float) -> None:
        self._timer = None
        state = self.conn.their_state
        if state not in (h11.IDLE, h11.SEND_BODY) or self.transport.is_closing():
            return
        if state is h11.SEND_BODY and self.flow.read_paused:
            self._arm(delay)  # the node holds back reading, not the client: look again later
            return
        logger.info(
            "HTTP connection closed: "
            + ("request headers" if state is h11.IDLE else "request body")
            + " not received in time",
            extra={"peer_address": self.client[0] if self.client else None},
        )
        self.transport.close()

    def _log_refusal(self) -> None:
        last, since = self._refused_log
        now = time.monotonic()
        if now - last < _LOG_EVERY_S:
            self._refused_log[1] = since + 1
            return
        logger.warning(
            "HTTP connection refused: http_max_connections open",
            extra={"max_connections": self.limits.max_connections, "not_logged": since},
        )
        self._refused_log[:] = [now, 0]


def protocol_class(limits: HttpLimits) -> type[LimitedH11Protocol]:
    return type(
        "LimitedH11Protocol",
        (LimitedH11Protocol,),
        {"limits": limits, "_refused_log": [0.0, 0]},
    )
