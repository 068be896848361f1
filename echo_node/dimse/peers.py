"""Association control: only configured peers get in (DESIGN §6)."""

from __future__ import annotations

import logging

from pynetdicom import events

from echo_node.settings import PeerRule

logger = logging.getLogger(__name__)

# PS3.8 Table 9-21: rejected-permanent, source service-user, calling AE title not recognised.
REJECT_UNKNOWN_CALLING_AE = (0x01, 0x01, 0x03)


def peer_allowed(rules: tuple[PeerRule, ...], ae_title: str, address: str) -> bool:
    return not rules or any(rule.matches(ae_title, address) for rule in rules)


def handle_requested(event: events.Event, rules: tuple[PeerRule, ...]) -> None:
    """EVT_REQUESTED: reject an association from a peer that no allowed_peers entry matches."""
    requestor = event.assoc.requestor
    request = requestor.primitive  # requestor.ae_title is filled in only after this event
    assert request is not None
    ae_title = str(request.calling_ae_title).strip()
    address = str(requestor.address)
    if peer_allowed(rules, ae_title, address):
        return
    logger.warning(
        "association rejected: peer not in allowed_peers",
        extra={"peer_ae": ae_title, "peer_address": address},
    )
    event.assoc.acse.send_reject(*REJECT_UNKNOWN_CALLING_AE)
    event.assoc.is_rejected = True
    event.assoc.kill()
