"""Who the SCP takes on: connections before their association request, then association
slots, per address and in total.

pynetdicom counts every connection's thread against ``maximum_associations`` from the TCP
connect on, including connections that never send an A-ASSOCIATE-RQ and, for up to the ACSE
timeout, ones already closed; twenty of those lock every scanner out. Here:

- a connection is *pending* from its accept until its A-ASSOCIATE-RQ is decided or it closes
  (its socket's close, ``pdu_guard``); an address may have ``max_pending_per_address`` pending
  connections and all addresses together ``4 x max_associations``; further ones are closed at
  accept. Addresses an allowed_peers entry names by network are exempt, so a listed scanner
  always gets through while strangers flood the port;
- a *slot* is spent only when EVT_REQUESTED lets an association in (after the allowed_peers
  check), and is free again the moment that association is released, aborted or its thread
  ends: ``max_associations`` in total, ``max_associations_per_address`` per address (again
  not for listed networks).

Counts come from the live objects (is the socket closed, is the thread alive), not from
event counters, so a missed event cannot leak a slot.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pynetdicom.association import Association

    from echo_node.settings import PeerRule, Settings

logger = logging.getLogger(__name__)

_PENDING_PER_SLOT = 4
# A refusal is logged at most this often per address, with the number not logged since.
_LOG_EVERY_S = 10.0
# A pending connection not closed this long after its ARTIM deadline is not counted: the
# socket enforces the deadline, this only keeps a missed close from holding a place for ever.
_PENDING_GRACE_S = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AdmissionLimits:
    max_associations: int
    per_address: int
    pending_per_address: int
    pending_total: int
    pending_for_s: float  # how long a connection may stay pending (the ARTIM timeout)
    trusted: tuple[Network, ...]  # networks allowed_peers names: exempt from pending limits

    @classmethod
    def from_settings(cls, settings: Settings) -> AdmissionLimits:
        return cls(
            max_associations=settings.max_associations,
            per_address=settings.max_associations_per_address,
            pending_per_address=settings.max_pending_per_address,
            pending_total=_PENDING_PER_SLOT * settings.max_associations,
            pending_for_s=settings.artim_timeout_s,
            trusted=trusted_networks(settings.allowed_peers),
        )


def trusted_networks(rules: tuple[PeerRule, ...]) -> tuple[Network, ...]:
    return tuple(rule.network for rule in rules if rule.network is not None)


class Connection:
    """One accepted connection while its association request is awaited."""

    def __init__(self, address: str, trusted: bool, accepted_at: float) -> None:
        self.address = address
        self.trusted = trusted
        self.accepted_at = accepted_at
        self.done = False  # closed, or its association request decided

    def release(self) -> None:
        self.done = True


@dataclass
class _Throttle:
    last: float = 0.0
    suppressed: int = 0


class Admission:
    """Thread-safe; one per process, shared by its listeners (clear and TLS)."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._pending: list[Connection] = []
        self._admitted: list[tuple[str, Association]] = []
        self._throttles: dict[str, _Throttle] = {}

    def connect(self, address: str) -> Connection | None:
        """A Connection for a newly accepted peer, or None if it must be closed at once."""
        now = time.monotonic()
        trusted = _in(address, self.limits.trusted)
        with self._lock:
            self._pending = [c for c in self._pending if self._is_pending(c, now)]
            if not trusted:
                strangers = [c for c in self._pending if not c.trusted]
                mine = sum(1 for c in strangers if c.address == address)
                limit = None
                if mine >= self.limits.pending_per_address:
                    limit = "max_pending_per_address"
                elif len(strangers) >= self.limits.pending_total:
                    limit = "pending connections in total"
                if limit is not None:
                    self._refuse(address, limit, now)
                    return None
            connection = Connection(address, trusted, now)
            self._pending.append(connection)
            return connection

    def admit(self, association: Association, address: str) -> str | None:
        """Take a slot for an association whose request passed the allowed_peers check;
        the reason it cannot have one, or None."""
        trusted = _in(address, self.limits.trusted)
        with self._lock:
            self._admitted = [(a, assoc) for a, assoc in self._admitted if _holds_slot(assoc)]
            mine = sum(1 for a, _ in self._admitted if a == address)
            if len(self._admitted) >= self.limits.max_associations:
                reason = "max_associations"
            elif not trusted and mine >= self.limits.per_address:
                reason = "max_associations_per_address"
            else:
                self._admitted.append((address, association))
                return None
            self._refuse(address, reason, time.monotonic())
            return reason

    def _is_pending(self, connection: Connection, now: float) -> bool:
        expiry = connection.accepted_at + self.limits.pending_for_s + _PENDING_GRACE_S
        return not connection.done and now < expiry

    def _refuse(self, address: str, limit: str, now: float) -> None:
        throttle = self._throttles.setdefault(address, _Throttle())
        if now - throttle.last < _LOG_EVERY_S:
            throttle.suppressed += 1
            return
        logger.warning(
            "DIMSE peer refused: limit reached",
            extra={"peer_address": address, "limit": limit, "not_logged": throttle.suppressed},
        )
        throttle.last, throttle.suppressed = now, 0
        # Forget quiet addresses, so a scan of many addresses does not grow this for ever.
        if len(self._throttles) > 1024:
            self._throttles = {
                a: t for a, t in self._throttles.items() if now - t.last < _LOG_EVERY_S
            }


def _holds_slot(association: Association) -> bool:
    ended = association.is_released or association.is_aborted or association.is_rejected
    return association.is_alive() and not ended


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
