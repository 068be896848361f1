"""The associations this process is serving, for the associations-active gauge.

A set of associations rather than a counter: an association can end with more than one event
(release, abort, connection close), and counting each would drift below zero.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pynetdicom import events

if TYPE_CHECKING:
    from prometheus_client import Gauge


class ActiveAssociations:
    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._open: set[int] = set()
        self._lock = threading.Lock()

    def established(self, event: events.Event) -> None:
        with self._lock:
            self._open.add(id(event.assoc))
            self._gauge.set(len(self._open))

    def ended(self, event: events.Event) -> None:
        with self._lock:
            self._open.discard(id(event.assoc))
            self._gauge.set(len(self._open))
