"""One delivery pass: claim what is due, send it grouped by destination, record each outcome.

The worker loop calls :func:`deliver_due` periodically; nothing here starts threads. A delivery
a peer acknowledged is marked ``sent`` and never claimed again (only ``echo-node send`` makes it
pending again). The one way a file reaches a peer twice is a crash between the peer's
acknowledgement and the commit of ``sent``: the lease then expires and it is sent again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from echo_node.export.dicomweb import stow_files
from echo_node.export.dimse import store_files
from echo_node.export.outcome import Item, SendResult, permanent, transient
from echo_node.export.queue import (
    Claim,
    claim_due,
    mark_failed,
    mark_retry,
    mark_sent,
    release,
)
from echo_node.node import Node
from echo_node.settings import Destination
from storage.queue import FAILED, PENDING, SENT

logger = logging.getLogger(__name__)

# Deliveries claimed per pass: small enough that a pass ends well inside the lease.
BATCH = 32


@dataclass(frozen=True)
class DeliveryReport:
    """What became of one claimed delivery; state "" if another worker had taken it over."""

    delivery_id: int
    destination: str
    sop_instance_uid: str
    state: str
    attempts: int
    message: str


def deliver_due(node: Node, worker_id: str) -> int:
    """Run one pass; returns how many deliveries it attempted (0: nothing was due)."""
    return len(deliver_pass(node, worker_id))


def deliver_pass(node: Node, worker_id: str, limit: int = BATCH) -> list[DeliveryReport]:
    """Claim up to ``limit`` due deliveries, send them and record what happened to each."""
    settings = node.settings
    with node.sessions.begin() as session:
        claims = claim_due(session, worker_id, settings.job_lease_s, limit)
    # Start no send in the second half of the lease: what is left is given back unsent. With
    # the network timeout at most half the lease (the defaults: 60 s and 120 s) a send in
    # flight ends before the lease does, so no other worker can take it over meanwhile.
    deadline = time.monotonic() + settings.job_lease_s / 2
    by_destination: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_destination[claim.destination].append(claim)
    destinations = {destination.name: destination for destination in settings.destinations}
    reports: list[DeliveryReport] = []
    for name, group in by_destination.items():
        destination = destinations.get(name)
        if destination is None:
            results = {
                c.delivery_id: permanent(f"{name} is not a configured destination") for c in group
            }
        else:
            results = _send_group(node, destination, group, deadline)
        reports.extend(_record(node, group, results))
    return reports


def _send_group(
    node: Node, destination: Destination, claims: Sequence[Claim], deadline: float
) -> dict[int, SendResult]:
    try:
        return _send(node, destination, claims, deadline)
    except Exception as exc:  # a fault in one destination's sender must not stop the others
        logger.exception("sending to %s failed unexpectedly", destination.name)
        failure = transient(f"{destination.name}: unexpected {type(exc).__name__}", str(exc))
        return dict.fromkeys((claim.delivery_id for claim in claims), failure)


def _send(
    node: Node, destination: Destination, claims: Sequence[Claim], deadline: float
) -> dict[int, SendResult]:
    items = [
        Item(
            key=claim.delivery_id,
            path=node.store.root / claim.path,
            sop_instance_uid=claim.sop_instance_uid,
            sop_class_uid=claim.sop_class_uid,
            transfer_syntax_uid=claim.transfer_syntax_uid,
        )
        for claim in claims
    ]
    settings = node.settings
    if destination.kind == "dimse":
        return store_files(
            destination,
            items,
            calling_ae=settings.ae_title,
            timeout_s=settings.network_timeout_s,
            max_pdu=settings.max_pdu_size,
            deadline=deadline,
        )
    return stow_files(destination, items, timeout_s=settings.network_timeout_s, deadline=deadline)


def _record(
    node: Node, claims: Sequence[Claim], results: dict[int, SendResult]
) -> list[DeliveryReport]:
    settings = node.settings
    reports = []
    with node.sessions.begin() as session:
        for claim in claims:
            result = results[claim.delivery_id]
            if result.ok:
                state = SENT if mark_sent(session, claim) else ""
            elif not result.attempted:
                state = PENDING if release(session, claim) else ""
            elif result.transient:
                state = mark_retry(
                    session,
                    claim,
                    result.error,
                    backoff_s=settings.retry_backoff_s,
                    max_attempts=settings.delivery_max_attempts,
                )
            else:
                state = FAILED if mark_failed(session, claim, result.error) else ""
            _log(claim, state, result)
            if state and result.attempted:
                outcome = "retry" if state == PENDING else state
                node.metrics.delivered(claim.destination, outcome)
            reports.append(
                DeliveryReport(
                    delivery_id=claim.delivery_id,
                    destination=claim.destination,
                    sop_instance_uid=claim.sop_instance_uid,
                    state=state,
                    attempts=claim.attempts,
                    message=result.error,
                )
            )
    return reports


def _log(claim: Claim, state: str, result: SendResult) -> None:
    about = {
        "delivery_id": claim.delivery_id,
        "destination": claim.destination,
        "sop_instance_uid": claim.sop_instance_uid,
    }
    if state == SENT:
        logger.info("sent", extra=about)
    elif state == "":
        logger.warning("lease on a delivery expired before its outcome was recorded", extra=about)
    else:
        logger.warning(
            "delivery attempt %d failed (%s)",
            claim.attempts,
            state,
            extra={**about, "error": result.message},
        )
