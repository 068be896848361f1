"""Storage Commitment Push Model SCP (PS3.4 Annex J): the N-ACTION request.

The request is checked and recorded, and N-ACTION-RSP answers at once: success means only
that the node has taken the request on. Whether each instance is committed goes in the
N-EVENT-REPORT (commitment_report.py), sent from a thread started here once the request is
durable, and again by the sweep until the requester has acknowledged it.
"""

from __future__ import annotations

import logging
import threading

from pydicom.dataset import Dataset
from pynetdicom import events
from pynetdicom.dimse_primitives import N_ACTION
from pynetdicom.sop_class import StorageCommitmentPushModelInstance  # type: ignore[attr-defined]
from sqlalchemy.exc import SQLAlchemyError

from echo_node.dimse.commitment_report import Reporter
from storage.commitments import Reference, record_request
from storage.uids import InvalidUID, checked_uid

logger = logging.getLogger(__name__)

# PS3.4 J.3.2.1.1: Action Type ID 1 is "Request Storage Commitment".
REQUEST_STORAGE_COMMITMENT = 1
# PS3.7 C.4.5 N-ACTION statuses.
SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
NO_SUCH_SOP_INSTANCE = 0x0112
INVALID_ARGUMENT_VALUE = 0x0115
NO_SUCH_ACTION = 0x0123
_ERROR_COMMENT_MAX = 64  # LO


class InvalidRequest(ValueError):
    """The Action Information is not a usable storage commitment request; says why."""


def parse_request(action: Dataset) -> tuple[str, list[Reference]]:
    """Transaction UID and Referenced SOP Sequence of a Storage Commitment request."""
    try:
        transaction_uid = checked_uid(action.get("TransactionUID"), "TransactionUID")
        items = action.get("ReferencedSOPSequence")
        if not items:
            raise InvalidRequest("ReferencedSOPSequence is missing or empty")
        references = [
            Reference(
                checked_uid(item.get("ReferencedSOPClassUID"), "ReferencedSOPClassUID"),
                checked_uid(item.get("ReferencedSOPInstanceUID"), "ReferencedSOPInstanceUID"),
            )
            for item in items
        ]
    except InvalidUID as exc:
        raise InvalidRequest(str(exc)) from None
    return transaction_uid, references


def handle_action(event: events.Event, reporter: Reporter) -> tuple[Dataset, None]:
    """EVT_N_ACTION: record a storage commitment request and answer N-ACTION-RSP."""
    request = event.request
    assert isinstance(request, N_ACTION)
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    if request.ActionTypeID != REQUEST_STORAGE_COMMITMENT:
        return _status(NO_SUCH_ACTION, f"Action Type ID {request.ActionTypeID}"), None
    if request.RequestedSOPInstanceUID != StorageCommitmentPushModelInstance:
        return _status(NO_SUCH_SOP_INSTANCE, "not the well-known commitment instance"), None
    try:
        transaction_uid, references = parse_request(event.action_information)
    except InvalidRequest as exc:
        return _status(INVALID_ARGUMENT_VALUE, str(exc)), None
    except Exception as exc:  # pydicom raises many kinds on a damaged dataset; all mean this
        return _status(INVALID_ARGUMENT_VALUE, f"cannot decode: {type(exc).__name__}"), None
    try:
        with reporter.sessions.begin() as session:
            commitment_id = record_request(
                session,
                transaction_uid,
                calling_ae,
                str(event.assoc.requestor.address),
                references,
            )
    except SQLAlchemyError as exc:
        # Not recorded, so not taken on: the requester must not wait for a report.
        logger.error(
            "storage commitment request not recorded",
            extra={"transaction_uid": transaction_uid, "error": type(exc).__name__},
        )
        return _status(PROCESSING_FAILURE, "storage error"), None
    logger.info(
        "storage commitment requested",
        extra={
            "transaction_uid": transaction_uid,
            "peer_ae": calling_ae,
            "instances": len(references),
        },
    )
    # pynetdicom sends the N-ACTION-RSP when this handler returns; a report on this same
    # association waits for that (send_n_event_report pauses the association's reactor).
    threading.Thread(
        target=reporter.report,
        kwargs={"commitment_id": commitment_id, "association": event.assoc},
        name=f"commitment-report-{commitment_id}",
        daemon=True,
    ).start()
    return _status(SUCCESS), None


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        # LO: default character repertoire, no backslash.
        text = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in comment)
        status.ErrorComment = text[:_ERROR_COMMENT_MAX]
    return status
