"""C-STORE SCU: one association per destination and batch, the file's own transfer syntax first.

For every SOP class two presentation contexts are proposed: the file's transfer syntax alone,
and explicit/implicit VR little endian (PS3.5 requires every SCP to accept implicit VR little
endian). A compressed file goes as stored when the peer accepts its syntax; otherwise it is
decompressed with pydicom and sent uncompressed, keeping its SOP Instance UID (a change of
transfer syntax does not make a new instance; Lossy Image Compression stays as it was).

Files are read into a dataset and sent with ``send_c_store(Dataset)``: pynetdicom's chunked
file mode is a process-wide switch (``_config.STORE_SEND_CHUNKED_DATASET``) that would also
change how the node's own SCP and other threads behave, so it is left alone.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.status import code_to_category

from echo_node.dimse.tls import client_context
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

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# PS3.7 C.4.2 / PS3.4 B.2.3: 0xA7xx "Refused: Out of Resources" may pass; other refusals and
# failures (0xA9xx data set does not match SOP class, 0xCxxx cannot understand) will not.
_OUT_OF_RESOURCES = 0xA700
# An association proposes at most 128 presentation contexts (PS3.8 9.3.2.2: odd IDs 1-255).
MAX_CONTEXTS = 128


def store_files(
    destination: Destination,
    items: Sequence[Item],
    *,
    calling_ae: str,
    timeout_s: float,
    max_pdu: int,
    deadline: float | None = None,
) -> dict[int, SendResult]:
    """Send ``items`` to a DIMSE destination; a result for every item's key.

    No new C-STORE starts after ``deadline`` (``time.monotonic()``); those items come back
    as not attempted.
    """
    results: dict[int, SendResult] = {}
    for batch in _batches(items):
        if out_of_time(deadline):
            results.update(dict.fromkeys((item.key for item in batch), NOT_ATTEMPTED))
            continue
        results.update(_store_batch(destination, batch, calling_ae, timeout_s, max_pdu, deadline))
    return results


def _contexts(item: Item) -> list[list[UID]]:
    syntax = UID(item.transfer_syntax_uid)
    if syntax in UNCOMPRESSED:
        return [list(UNCOMPRESSED)]
    return [[syntax], list(UNCOMPRESSED)]


def _batches(items: Sequence[Item]) -> list[list[Item]]:
    """Split so that no association proposes more than 128 presentation contexts."""
    batches: list[list[Item]] = []
    current: list[Item] = []
    contexts: set[tuple[str, tuple[UID, ...]]] = set()
    for item in items:
        wanted = {(item.sop_class_uid, tuple(syntaxes)) for syntaxes in _contexts(item)}
        if len(contexts | wanted) > MAX_CONTEXTS:
            batches.append(current)
            current, contexts = [], set()
        current.append(item)
        contexts |= wanted
    if current:
        batches.append(current)
    return batches


def _store_batch(
    destination: Destination,
    items: list[Item],
    calling_ae: str,
    timeout_s: float,
    max_pdu: int,
    deadline: float | None,
) -> dict[int, SendResult]:
    assert destination.host and destination.port and destination.ae_title  # by Destination
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout_s
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    proposed: set[tuple[str, tuple[UID, ...]]] = set()
    for item in items:
        for syntaxes in _contexts(item):
            if (item.sop_class_uid, tuple(syntaxes)) not in proposed:
                proposed.add((item.sop_class_uid, tuple(syntaxes)))
                ae.add_requested_context(item.sop_class_uid, syntaxes)
    try:
        tls_args = (client_context(destination), destination.host) if destination.tls else None
    except (OSError, ssl.SSLError) as exc:
        return dict.fromkeys(
            (item.key for item in items),
            permanent(f"{destination.name}: TLS certificate files unusable", str(exc)),
        )
    connected = threading.Event()  # pynetdicom reports a refused connection as an abort
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        max_pdu=max_pdu,
        tls_args=tls_args,
        evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event: connected.set())],
    )
    if not assoc.is_established:
        if not connected.is_set():  # refused, timed out, or the TLS handshake failed
            why = "could not be reached" + (" over TLS" if destination.tls else "")
        elif assoc.is_rejected:
            why = "rejected the association"
        else:
            why = "aborted the association"
        where = f"{destination.ae_title}@{destination.host}:{destination.port}"
        return {item.key: transient(f"{destination.name} {why}", where) for item in items}
    results: dict[int, SendResult] = {}
    try:
        for item in items:
            if not assoc.is_established:
                results[item.key] = transient(f"{destination.name}: association ended early")
                continue
            if out_of_time(deadline):
                results[item.key] = NOT_ATTEMPTED
                continue
            results[item.key] = _store_one(assoc, destination, item)
    finally:
        if assoc.is_established:
            assoc.release()
    return results


def _store_one(assoc: Association, destination: Destination, item: Item) -> SendResult:
    accepted = {
        cx.transfer_syntax[0]
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == item.sop_class_uid
    }
    syntax = UID(item.transfer_syntax_uid)
    try:
        dataset = dcmread(item.path)
    except (OSError, ValueError, InvalidDicomError) as exc:
        return permanent(f"cannot read the stored file of {item.sop_instance_uid}: {exc}")
    if syntax not in accepted and syntax.is_compressed:
        if not accepted & set(UNCOMPRESSED):
            return permanent(
                f"{destination.name} accepted neither {syntax.name} nor little endian "
                f"for SOP class {item.sop_class_uid}"
            )
        try:
            dataset.decompress(generate_instance_uid=False)
        except Exception as exc:  # any decoder fault: this file cannot be sent uncompressed
            return permanent(f"cannot decompress {item.sop_instance_uid} ({syntax.name}): {exc}")
        logger.info(
            "sending decompressed: the peer refused %s",
            syntax.name,
            extra={"destination": destination.name, "sop_instance_uid": item.sop_instance_uid},
        )
    elif not accepted:
        return permanent(f"{destination.name} accepted no context for {item.sop_class_uid}")
    return _status(assoc, destination, item, dataset)


def _status(
    assoc: Association, destination: Destination, item: Item, dataset: Dataset
) -> SendResult:
    try:
        status = assoc.send_c_store(dataset)
    except ValueError as exc:  # pynetdicom: no usable context, or the dataset cannot be encoded
        return permanent(f"cannot send {item.sop_instance_uid}: {exc}")
    if "Status" not in status:
        return transient(f"{destination.name}: no C-STORE response (timeout or abort)")
    code = int(status.Status)
    category = code_to_category(code)
    if category in ("Success", "Warning"):
        if category == "Warning":
            logger.warning(
                "stored with warning status 0x%04X",
                code,
                extra={"destination": destination.name, "sop_instance_uid": item.sop_instance_uid},
            )
        return SENT
    comment = str(status.ErrorComment) if "ErrorComment" in status else ""
    message = f"{destination.name}: C-STORE status 0x{code:04X} {category}"
    if code & 0xFF00 == _OUT_OF_RESOURCES:
        return transient(message, comment)
    return permanent(message, comment)
