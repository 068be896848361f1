"""STOW-RS (PS3.18 10.5): one POST of multipart/related; type="application/dicom" per file.

One request per instance keeps each outcome unambiguous; the files share one HTTP connection.
Status codes (PS3.18 Table 10.5.3-1): 200 stored; 202 some stored with warnings or failures
(the response's Failed SOP Sequence says which); 409 none stored. Other 4xx answers are
permanent (bad request, token refused) except 408/429; 5xx and transport errors are transient.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from echo_node.export.outcome import (
    NOT_ATTEMPTED,
    SENT,
    Item,
    SendResult,
    out_of_time,
    permanent,
    transient,
)
from echo_node.settings import Destination

logger = logging.getLogger(__name__)

_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"
_RETRYABLE_4XX = {408, 429}
_BODY_EXCERPT = 300


def stow_files(
    destination: Destination,
    items: Sequence[Item],
    *,
    timeout_s: float,
    deadline: float | None = None,
) -> dict[int, SendResult]:
    """Send ``items`` to a DICOMweb destination; a result for every item's key.

    No new request starts after ``deadline`` (``time.monotonic()``); those items come back as
    not attempted.
    """
    assert destination.url  # by Destination
    url = destination.url.rstrip("/") + "/studies"
    headers = {"Accept": "application/dicom+json"}
    if destination.token:
        headers["Authorization"] = f"Bearer {destination.token}"
    results: dict[int, SendResult] = {}
    with httpx.Client(headers=headers, timeout=timeout_s) as client:
        for item in items:
            if out_of_time(deadline):
                results[item.key] = NOT_ATTEMPTED
            else:
                results[item.key] = _stow_one(client, url, destination, item)
    return results


def _stow_one(client: httpx.Client, url: str, destination: Destination, item: Item) -> SendResult:
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        return permanent(f"cannot read the stored file of {item.sop_instance_uid}: {exc}")
    boundary = uuid.uuid4().hex
    body = b"".join(
        (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    try:
        response = client.post(url, content=body, headers={"Content-Type": content_type})
    except httpx.HTTPError as exc:  # connection refused, timeout, protocol error
        return transient(f"{destination.name}: {type(exc).__name__}", str(exc))
    failure = _failure_reason(response, item.sop_instance_uid)
    status = response.status_code
    if status in (200, 202) and failure is None:
        if status == 202:
            logger.warning(
                "stored with warnings",
                extra={"destination": destination.name, "sop_instance_uid": item.sop_instance_uid},
            )
        return SENT
    message = f"{destination.name}: STOW-RS HTTP {status}"
    if failure is not None:
        message += f", FailureReason {failure}"
    detail = response.text[:_BODY_EXCERPT] if status >= 400 else ""
    if status >= 500 or status in _RETRYABLE_4XX:
        return transient(message, detail)
    return permanent(message, detail)


def _failure_reason(response: httpx.Response, sop_instance_uid: str) -> str | None:
    """The Failure Reason the peer gave for this instance, if it listed it as failed."""
    try:
        payload: Any = response.json()
    except ValueError:
        return None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    failed = payload.get(_FAILED_SOP_SEQUENCE, {}).get("Value", [])
    for entry in failed if isinstance(failed, list) else []:
        uids = entry.get(_REFERENCED_SOP_INSTANCE_UID, {}).get("Value", [])
        if sop_instance_uid in uids or not uids:
            reasons = entry.get(_FAILURE_REASON, {}).get("Value", [])
            return f"0x{int(reasons[0]):04X}" if reasons else "unknown"
    return None
