"""Association control when the data disk is below its free-space watermark (echo_node.watermark).

A new association is rejected with A-ASSOCIATE-RJ "rejected-transient, service-provider
(presentation), temporary congestion" (PS3.8 Table 9-21: result 2, source 3, reason 1), rather
than accepted and its C-STOREs answered 0xA700 (Out of Resources). Why: a modality's send
queue treats a refused association like an unreachable node and keeps the whole study to send
again later, unchanged; a failure status on each C-STORE is per image, and many scanners then
mark the study "partially sent" or "failed", which needs a technologist to send it again by
hand. A transient rejection also stops the sender before it has transferred anything.
Associations already established are left alone, so a study under way arrives whole: the
watermark's margin is there for them.
"""

from __future__ import annotations

import logging

from pynetdicom.association import Association

from echo_node.watermark import Watermark

logger = logging.getLogger(__name__)

# PS3.8 Table 9-21: rejected-transient, service-provider (presentation), temporary congestion.
REJECT_DISK_LOW = (0x02, 0x03, 0x01)


def disk_low(association: Association, watermark: Watermark) -> bool:
    """Whether free space is below the watermark, logged with the peer (peers.py rejects)."""
    space = watermark.check()
    if space.ok:
        return False
    request = association.requestor.primitive
    logger.warning(
        "association rejected: free disk space below the watermark",
        extra={
            "peer_ae": str(request.calling_ae_title).strip() if request is not None else None,
            "peer_address": str(association.requestor.address),
            "free_bytes": space.free,
            "watermark_bytes": space.required,
        },
    )
    return True
