"""Storage commitment reports: check each instance, then N-EVENT-REPORT to the requester.

PS3.4 J.3.3: Event Type 1 when every referenced instance is committed (all in the Referenced
SOP Sequence), Event Type 2 when any failed (those in the Failed SOP Sequence with a Failure
Reason, the rest in the Referenced SOP Sequence). The report goes on a new association the
node opens to the requester, proposing the Storage Commitment Push Model with SCP/SCU role
selection for the SCP role (J.3.3.1.2: the requestor is otherwise the SCU). Where no address
is known, the association the request came on is tried if the requester keeps it open.

A report is retried with backoff until the requester acknowledges it (N-EVENT-REPORT-RSP
success) or the attempts run out; each attempt checks the files again, so it says what the
node holds when it is sent.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)
from pynetdicom.status import code_to_category
from sqlalchemy.orm import Session, sessionmaker

from echo_node.dimse.peers import peer_allowed
from echo_node.dimse.tls import client_context
from echo_node.settings import CommitmentPeer, Destination, Settings
from storage.commitments import (
    CommitmentClaim,
    HashMemo,
    Verdict,
    check_instances,
    claim_due,
    indexed_files,
    mark_retry,
    mark_sent,
)
from storage.files import FileStore
from storage.queue import FAILED, SENT

logger = logging.getLogger(__name__)

ALL_COMMITTED = 1  # PS3.4 Table J.3-2 Event Type IDs
SOME_FAILED = 2
# Proposed for the report's association (the node takes the SCP role by role selection).
REPORT_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# Requests handled per sweep pass.
BATCH = 16


@dataclass(frozen=True)
class ReportOutcome:
    """What became of one report attempt; state "" if another process had taken it over."""

    commitment_id: int
    transaction_uid: str
    calling_ae: str
    state: str
    event_type: int
    failed: int
    error: str
    files_hashed: int = 0  # referenced files read and hashed for this attempt
    files_unchanged: int = 0  # known unchanged since an earlier attempt hashed them


@dataclass(frozen=True)
class Reporter:
    """What sending reports needs; holds no state, so threads and the sweep share one."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: FileStore

    def report_due(self, limit: int = BATCH) -> list[ReportOutcome]:
        """One sweep pass: every report whose (re)try time has come."""
        with self.sessions.begin() as session:
            claims = claim_due(session, self.settings.job_lease_s, limit)
        return [self._report(claim, None) for claim in claims]

    def report(
        self, commitment_id: int, association: Association | None = None
    ) -> ReportOutcome | None:
        """Report one request now, if it is still due (None if not: sent, or being sent)."""
        with self.sessions.begin() as session:
            claims = claim_due(session, self.settings.job_lease_s, 1, commitment_id)
        return self._report(claims[0], association) if claims else None

    def _report(self, claim: CommitmentClaim, association: Association | None) -> ReportOutcome:
        event_type, failed, error = ALL_COMMITTED, 0, ""
        memo = HashMemo(claim.file_hashes)
        try:
            with self.sessions.begin() as session:
                indexed = indexed_files(session, {r.sop_instance_uid for r in claim.references})
            verdicts = check_instances(self.store, claim.references, indexed, memo)
            failed = sum(1 for verdict in verdicts if not verdict.committed)
            event_type = SOME_FAILED if failed else ALL_COMMITTED
            information = event_information(claim.transaction_uid, self.settings.ae_title, verdicts)
            error = self._send(claim, information, event_type, association)
        except Exception as exc:  # a fault in one report must not end the thread or the sweep
            logger.exception(
                "storage commitment report failed unexpectedly",
                extra={"transaction_uid": claim.transaction_uid},
            )
            error = f"unexpected {type(exc).__name__}"
        with self.sessions.begin() as session:
            if not error:
                state = SENT if mark_sent(session, claim, event_type, failed, memo) else ""
            else:
                state = mark_retry(
                    session,
                    claim,
                    error,
                    backoff_s=self.settings.retry_backoff_s,
                    max_attempts=self.settings.commitment_report_attempts,
                    memo=memo,
                )
        _log(claim, state, event_type, failed, error, memo)
        return ReportOutcome(
            claim.commitment_id,
            claim.transaction_uid,
            claim.calling_ae,
            state,
            event_type,
            failed,
            error,
            memo.hashed,
            memo.reused,
        )

    def _send(
        self,
        claim: CommitmentClaim,
        information: Dataset,
        event_type: int,
        association: Association | None,
    ) -> str:
        """Send the report; "" on the requester's success status, else what went wrong."""
        target = self.settings.commitment_target(claim.calling_ae)
        if target is not None:
            return self._send_new_association(claim.calling_ae, target, information, event_type)
        if association is not None and association.is_established:
            return _send_event_report(association, information, event_type)
        logger.error(
            "no address for the storage commitment requester: add it to commitment_peers",
            extra={"peer_ae": claim.calling_ae, "transaction_uid": claim.transaction_uid},
        )
        return f"no address known for {claim.calling_ae} (commitment_peers)"

    def _send_new_association(
        self,
        called_ae: str,
        target: CommitmentPeer | Destination,
        information: Dataset,
        event_type: int,
    ) -> str:
        settings = self.settings
        assert target.host and target.port  # by CommitmentPeer and Destination
        host, port = target.host, target.port
        where = f"{called_ae}@{host}:{port}"
        # allowed_peers holds for the associations the node opens too. Each address is checked
        # and connected to as such, so a name cannot pass the check with one and connect to
        # another.
        try:
            addresses = _resolve(host, port)
        except OSError as exc:
            return f"{where}: cannot resolve {host}: {exc.strerror or exc}"
        allowed = [a for a in addresses if peer_allowed(settings.allowed_peers, called_ae, a)]
        if not allowed:
            logger.error(
                "storage commitment report not sent: its destination is not in allowed_peers",
                extra={"peer_ae": called_ae, "peer_address": addresses[0]},
            )
            return f"{called_ae}@{addresses[0]} is not in allowed_peers"
        tls = target if isinstance(target, Destination) and target.tls else None
        try:
            tls_args = (client_context(tls), host) if tls is not None else None
        except (OSError, ssl.SSLError) as exc:
            return f"{where}: TLS certificate files unusable: {exc}"
        association, connected = _associate(settings, called_ae, allowed, port, tls_args)
        if not association.is_established:
            if not connected:
                return f"{where} could not be reached" + (" over TLS" if tls is not None else "")
            return f"{where} {'rejected' if association.is_rejected else 'aborted'} the association"
        try:
            return _send_event_report(association, information, event_type)
        finally:
            if association.is_established:
                association.release()


def _associate(
    settings: Settings,
    called_ae: str,
    addresses: list[str],
    port: int,
    tls_args: tuple[ssl.SSLContext, str] | None,
) -> tuple[Association, bool]:
    """An association for the report, to the first address that takes the connection (as a
    connection by name would); whether any connection was made at all."""
    ae = AE(ae_title=settings.ae_title)
    timeout = settings.network_timeout_s
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(StorageCommitmentPushModel, list(REPORT_TRANSFER_SYNTAXES))
    for address in addresses:
        connected = threading.Event()  # pynetdicom reports a refused connection as an abort
        association = ae.associate(
            address,
            port,
            ae_title=called_ae,
            max_pdu=settings.max_pdu_size,
            ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
            tls_args=tls_args,
            evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event, c=connected: c.set())],
        )
        if connected.is_set():
            return association, True
    return association, False


def _resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (a name or a literal) in the order a connection tries them."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


def event_information(
    transaction_uid: str, retrieve_ae_title: str, verdicts: Sequence[Verdict]
) -> Dataset:
    """The N-EVENT-REPORT's Event Information (PS3.4 Table J.3-2)."""
    information = Dataset()
    information.TransactionUID = transaction_uid
    # Where the committed instances can be retrieved from (Type 3).
    information.RetrieveAETitle = retrieve_ae_title
    committed = [verdict for verdict in verdicts if verdict.committed]
    failed = [verdict for verdict in verdicts if not verdict.committed]
    if committed:
        information.ReferencedSOPSequence = [_item(verdict) for verdict in committed]
    if failed:
        information.FailedSOPSequence = [_item(verdict) for verdict in failed]
    return information


def _item(verdict: Verdict) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = verdict.reference.sop_class_uid
    item.ReferencedSOPInstanceUID = verdict.reference.sop_instance_uid
    if verdict.failure_reason is not None:
        item.FailureReason = verdict.failure_reason
    return item


def _send_event_report(association: Association, information: Dataset, event_type: int) -> str:
    try:
        status, _reply = association.send_n_event_report(
            information, event_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
        )
    except (ValueError, RuntimeError) as exc:  # no accepted context, or the association ended
        return f"cannot send N-EVENT-REPORT: {exc}"
    if "Status" not in status:
        return "no N-EVENT-REPORT response (timeout or abort)"
    code = int(status.Status)
    if code_to_category(code) in ("Success", "Warning"):
        return ""
    return f"N-EVENT-REPORT status 0x{code:04X}"


def _log(
    claim: CommitmentClaim,
    state: str,
    event_type: int,
    failed: int,
    error: str,
    memo: HashMemo,
) -> None:
    extra = {
        "transaction_uid": claim.transaction_uid,
        "peer_ae": claim.calling_ae,
        "attempt": claim.attempts,
        # Files read this attempt, and those known unchanged since an earlier one.
        "files_hashed": memo.hashed,
        "files_unchanged": memo.reused,
    }
    if state == SENT:
        logger.info(
            "storage commitment report sent",
            extra={
                **extra,
                "event_type": event_type,
                "instances": len(claim.references),
                "failed": failed,
            },
        )
    elif state == FAILED:
        logger.error("storage commitment report given up", extra={**extra, "error": error})
    elif state:
        logger.warning("storage commitment report will be retried", extra={**extra, "error": error})
    else:
        logger.warning("storage commitment report: lease expired before the outcome", extra=extra)
