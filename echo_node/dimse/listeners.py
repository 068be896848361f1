"""The DIMSE listening sockets: opened once, shared by every ingest process, and each new
connection taken by the process that holds the fewest.

With a socket of its own per process (SO_REUSEPORT) the kernel hashes every new connection
onto one of them: four scanners end up two and two only three times in eight, and all four
in one process once in eight, where one GIL serves what two cores should (measured with the
ingest benchmark's four senders: 3-1 and 4-0 splits, and throughput to match). Here the first
process opens the sockets and hands them to the others (multiprocessing passes the
descriptors), so there is one accept queue per port; a process takes the next connection
only while it has no more connections open than the least busy one (a count per process in
shared memory), or once a connection has waited ``DEFER_S`` for the others, so a stuck
process cannot hold connections back. A process that stops (SIGTERM) leaves what is queued
to the others.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

# Listen backlog: socketserver's default of 5 makes peers wait out TCP's SYN retransmission
# whenever the accept loops are busy.
BACKLOG = 512
# How long a connection is left for a less busy process before this one takes it.
DEFER_S = 0.02


@dataclass(frozen=True)
class Listeners:
    """The listening sockets by port, the open connections of every process, and which
    process this is. Picklable for a spawned process while it is being started."""

    sockets: dict[int, socket.socket]
    loads: Any  # multiprocessing.Array("i"): connections open, per process
    index: int = 0

    @classmethod
    def open(cls, bind: str, ports: Iterable[int], processes: int) -> Listeners:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        sockets = {}
        for port in ports:
            # SO_REUSEADDR (create_server sets it): a restart binds while old connections
            # are in TIME_WAIT.
            listener = socket.create_server((bind, port), family=family, backlog=BACKLOG)
            listener.setblocking(False)  # the process that loses a race for a connection
            sockets[port] = listener
        return cls(sockets, multiprocessing.get_context("spawn").Array("i", processes))

    def for_process(self, index: int) -> Listeners:
        return replace(self, index=index)

    def socket(self, port: int) -> socket.socket:
        """This process's descriptor of the port's listening socket."""
        listener = self.sockets[port]
        listener.setblocking(False)
        return listener

    def least_busy(self) -> bool:
        """Whether this process holds no more open connections than any other."""
        with self.loads.get_lock():
            counts: list[int] = list(self.loads)
        return counts[self.index] <= min(counts)

    def opened(self) -> Ticket:
        """Count a connection this process accepted, until the ticket is closed."""
        with self.loads.get_lock():
            self.loads[self.index] += 1
        return Ticket(self)

    def close(self) -> None:
        for listener in self.sockets.values():
            # Closed, never shut down: shutdown() would stop the socket for every process.
            listener.close()


class Ticket:
    """One accepted connection in its process's count; ``close`` (any number of times, from
    any thread) takes it out."""

    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._lock = threading.Lock()
        self._open = True

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        loads = self._listeners.loads
        with loads.get_lock():
            loads[self._listeners.index] -= 1
