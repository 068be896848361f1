"""Association control: only configured peers get in (`allowed_peers`, see the README), and only
as many as the node has slots for (admission.py)."""

from __future__ import annotations

import logging

from pynetdicom import events
from pynetdicom.association import Association

from echo_node.dimse.admission import Admission
from echo_node.dimse.pdu_guard import GuardedSocket, GuardedSSLSocket
from echo_node.dimse.space import REJECT_DISK_LOW, disk_low
from echo_node.settings import PeerRule
from echo_node.watermark import Watermark

logger = logging.getLogger(__name__)

# PS3.8 Table 9-21: rejected-permanent, source service-user, calling AE title not recognised.
REJECT_UNKNOWN_CALLING_AE = (0x01, 0x01, 0x03)
# Rejected-transient, source service-provider (presentation), local-limit-exceeded.
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)


def peer_allowed(rules: tuple[PeerRule, ...], ae_title: str, address: str) -> bool:
    return not rules or any(rule.matches(ae_title, address) for rule in rules)


def handle_requested(
    event: events.Event, rules: tuple[PeerRule, ...], admission: Admission, watermark: Watermark
) -> None:
    """EVT_REQUESTED: reject a peer that no allowed_peers entry matches, then any while free
    disk space is below the watermark (space.py), then one for which no association slot is
    free; an association let through holds a slot from here on."""
    association = event.assoc
    requestor = association.requestor
    request = requestor.primitive  # requestor.ae_title is filled in only after this event
    assert request is not None
    ae_title = str(request.calling_ae_title).strip()
    address = str(requestor.address)
    _request_decided(association)
    if not peer_allowed(rules, ae_title, address):
        logger.warning(
            "association rejected: peer not in allowed_peers",
            extra={"peer_ae": ae_title, "peer_address": address},
        )
        _reject(association, REJECT_UNKNOWN_CALLING_AE)
        return
    if disk_low(association, watermark):
        _reject(association, REJECT_DISK_LOW)
        return
    if admission.admit(association, address) is not None:  # logged by admission
        _reject(association, REJECT_LOCAL_LIMIT)


def _request_decided(association: Association) -> None:
    """The connection is no longer waiting for its association request (admission.py)."""
    transport = association.dul.socket
    sock = transport.socket if transport is not None else None
    if isinstance(sock, GuardedSocket | GuardedSSLSocket) and sock.connection is not None:
        sock.connection.release()


def _reject(association: Association, reason: tuple[int, int, int]) -> None:
    association.acse.send_reject(*reason)
    association.is_rejected = True
    association.kill()
