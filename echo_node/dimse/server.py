"""The SCP (C-ECHO, C-STORE, storage commitment): one pynetdicom AE listening on the
configured port, and on the DICOM TLS port when one is set, shut down gracefully.

Several ingest processes accept on the same listening sockets (listeners.py), each new
connection taken by the process with the fewest open, which is how Python ingest scales past
one core. Both listeners of a process share one Admission, so max_associations counts their
associations together (per process). Every accepted connection is checked before pynetdicom
reads it: admission.py decides who gets in, pdu_guard.py bounds what they may send and for
how long, and pynetdicom_patches.py holds the few changes to pynetdicom's own behaviour.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.transport import ThreadedAssociationServer

from echo_node.dimse.active import ActiveAssociations
from echo_node.dimse.admission import Admission, AdmissionLimits
from echo_node.dimse.commitment import handle_action
from echo_node.dimse.commitment_report import Reporter
from echo_node.dimse.contexts import supported_contexts
from echo_node.dimse.listeners import DEFER_S, Listeners
from echo_node.dimse.pdu_guard import (
    ASSOCIATION_REQUEST_LIMIT,
    GuardedSocket,
    GuardedSSLSocket,
    PduGuard,
    PduLimits,
)
from echo_node.dimse.peers import handle_requested
from echo_node.dimse.pynetdicom_patches import AcceptorHandler, on_connection_closed
from echo_node.dimse.store import InFlight, handle_store
from echo_node.dimse.tls import handshake
from echo_node.ingest import Ingestor
from echo_node.settings import Settings
from echo_node.watermark import Watermark
from storage.hashing import Hasher

logger = logging.getLogger(__name__)

# How long shutdown waits for C-STORE handlers already running to finish.
_DRAIN_TIMEOUT_S = 60.0
# How often a process looks again at a connection it leaves to a less busy one.
_RETRY_S = 0.001
# pynetdicom's own association limit counts every connection from its TCP connect on; the
# node's Admission decides instead (after the association request), so this only has to be
# out of reach.
_PYNETDICOM_ASSOCIATION_LIMIT = 1_000_000


class _SharedPortServer(ThreadedAssociationServer):  # type: ignore[misc]
    """pynetdicom's threaded server on a listening socket shared by the ingest processes
    (listeners.py), with the node's admission and PDU checks on every accepted connection
    (admission.py, pdu_guard.py)."""

    def __init__(
        self,
        *args: Any,
        admission: Admission,
        limits: PduLimits,
        hasher: Hasher,
        listeners: Listeners,
        port: int,
        **kwargs: Any,
    ) -> None:
        self.admission = admission
        self.limits = limits
        self.hasher = hasher  # received data sets are hashed as they arrive (AcceptorHandler)
        self.listeners = listeners
        self._port = port
        self._deferring_since: float | None = None
        self._deferred_at = 0.0
        kwargs["request_handler"] = AcceptorHandler
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        """The shared listening socket instead of the one socketserver has just made."""
        assert self.socket is not None
        self.socket.close()
        self.socket = self.listeners.socket(self._port)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Nothing: the shared socket already listens."""

    def server_close(self) -> None:
        """This process's descriptor closed; never shut down (pynetdicom's does), which would
        stop the socket for the other processes too."""
        assert self.socket is not None
        self.socket.close()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        # Accepted in the accept loop; the TLS handshake, when there is one, runs later in the
        # connection's thread (pynetdicom runs it here, where one silent peer stalls all).
        assert self.socket is not None
        self._leave_to_a_less_busy_process()
        # BlockingIOError if another process took it first; socketserver then goes on.
        accepted, client = self.socket.accept()
        self._deferring_since = None
        ticket = self.listeners.opened()
        guard = PduGuard(self.limits, time.monotonic())
        guarded = GuardedSocket.adopt(accepted, guard, str(client[0]))
        guarded.ticket = ticket
        return guarded, client

    def _leave_to_a_less_busy_process(self) -> None:
        """Raise BlockingIOError (socketserver's accept loop then looks again) while another
        process holds fewer connections, for at most DEFER_S per waiting connection."""
        if self.listeners.least_busy():
            return
        now = time.monotonic()
        # Retries come every millisecond while a connection waits; a longer gap means the
        # last one was taken and this is a new one.
        if self._deferring_since is None or now - self._deferred_at > 5 * _RETRY_S:
            self._deferring_since = now
        self._deferred_at = now
        if now - self._deferring_since < DEFER_S:
            time.sleep(_RETRY_S)
            raise BlockingIOError("left to a less busy ingest process")

    def verify_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> bool:
        """socketserver's hook: False closes the connection before any thread is started."""
        assert isinstance(request, GuardedSocket)
        request.connection = self.admission.connect(str(client_address[0]))
        return request.connection is not None

    def service_actions(self) -> None:
        """Nothing: pynetdicom's runs a full gc.collect() in the accept loop every 60 turns,
        stalling accepts; Python's own collector frees ended associations' cycles anyway."""

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        """In the connection's own thread: hand it to pynetdicom only once it has sent
        something. A connection that stays silent until the association request's deadline,
        or closes without a byte (port scans, health checks), costs one sleeping thread
        instead of pynetdicom's two polling ones, and is closed here."""
        assert isinstance(request, GuardedSocket) and request.guard is not None
        address = client_address if isinstance(client_address, str) else client_address[0]
        connection = self._secure(request, address)
        if connection is None:
            return
        remaining = request.guard.deadline(time.monotonic()) - time.monotonic()
        if not _has_data(connection, remaining):
            connection.close()
            return
        super().process_request_thread(connection, client_address)

    def _secure(self, request: GuardedSocket, address: str) -> GuardedSocket | ssl.SSLSocket | None:
        return request


class _TlsSharedPortServer(_SharedPortServer):
    """The shared-port server with the TLS handshake in each connection's thread
    (``tls.handshake``), bounded by the ARTIM timeout like the association request."""

    def _secure(self, request: GuardedSocket, address: str) -> GuardedSocket | ssl.SSLSocket | None:
        assert self.ssl_context is not None
        secured = handshake(self.ssl_context, request, address, self.limits.artim_s)
        if isinstance(secured, GuardedSSLSocket):
            secured.take_over(request)
        return secured


def _has_data(connection: socket.socket, timeout: float) -> bool:
    """Whether the peer sends a byte within ``timeout``; False if it closes or stays silent."""
    if isinstance(connection, ssl.SSLSocket) and connection.pending():
        return True
    readable, _, _ = select.select([connection], [], [], max(timeout, 0))
    if not readable:
        logger.info(
            "DIMSE connection closed: nothing sent before the association request deadline",
            extra={"peer_address": getattr(connection, "address", "?")},
        )
        return False
    if isinstance(connection, ssl.SSLSocket):
        return True  # what is readable may be a TLS record that holds no data: pynetdicom sees
    try:  # the plain socket's own recv: a peek must not count as read (pdu_guard)
        return bool(socket.socket.recv(connection, 1, socket.MSG_PEEK))
    except OSError:
        return False


@dataclass
class DimseServer:
    settings: Settings
    ingestor: Ingestor
    reporter: Reporter
    # From echo_node.dimse.tls.server_context; None = no TLS listener.
    tls: ssl.SSLContext | None = None
    # The listening sockets shared with the other ingest processes (service.py); None: this
    # server opens its own.
    listeners: Listeners | None = None
    in_flight: InFlight = field(default_factory=InFlight)
    _ae: AE | None = None
    _admission: Admission | None = None
    _limits: PduLimits | None = None
    _hasher: Hasher = field(default_factory=Hasher)
    _servers: list[ThreadedAssociationServer] = field(default_factory=list)

    def start(self) -> None:
        # Received datasets go straight to a file (never decoded in memory) in the store's tmp/,
        # on the store's filesystem so the final rename is atomic. pynetdicom creates that file
        # with tempfile, whose directory is process-wide: this process is the node's.
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(self.ingestor.store.tmp)
        settings = self.settings
        ae = AE(ae_title=settings.ae_title)
        ae.supported_contexts = supported_contexts()
        ae.maximum_associations = _PYNETDICOM_ASSOCIATION_LIMIT
        ae.maximum_pdu_size = settings.max_pdu_size
        ae.network_timeout = settings.network_timeout_s
        # The acceptor waits this long for the A-ASSOCIATE-RQ, and it is pynetdicom's ARTIM.
        ae.acse_timeout = settings.artim_timeout_s
        ae.dimse_timeout = settings.network_timeout_s
        self._admission = Admission(AdmissionLimits.from_settings(settings))
        self._limits = PduLimits(
            association_request=ASSOCIATION_REQUEST_LIMIT,
            max_pdu=settings.max_pdu_size,
            artim_s=settings.artim_timeout_s,
            pdu_s=settings.network_timeout_s,
        )
        active = ActiveAssociations(self.ingestor.metrics.associations_active)
        handlers: list[evt.EventHandlerType] = [
            (
                evt.EVT_REQUESTED,
                handle_requested,
                [
                    settings.allowed_peers,
                    self._admission,
                    Watermark(self.ingestor.store.root, settings),
                ],
            ),
            (evt.EVT_C_STORE, handle_store, [self.ingestor, self.in_flight]),
            (evt.EVT_N_ACTION, handle_action, [self.reporter]),
            (evt.EVT_ESTABLISHED, active.established),
            (evt.EVT_RELEASED, active.ended),
            (evt.EVT_ABORTED, active.ended),
            (evt.EVT_CONN_CLOSE, active.ended),
            (evt.EVT_CONN_CLOSE, on_connection_closed),
        ]
        self._ae = ae
        if self.listeners is None:
            self.listeners = Listeners.open(settings.bind, dimse_ports(settings), processes=1)
        # TLS first: once the clear port answers (what a readiness probe checks), both do.
        if self.tls is not None:
            self._listen(self.settings.dimse_tls_port, self.tls, handlers)
        if self.settings.dimse_port:  # 0: TLS only
            self._listen(self.settings.dimse_port, None, handlers)

    def _listen(
        self, port: int, tls: ssl.SSLContext | None, handlers: list[evt.EventHandlerType]
    ) -> None:
        assert self._ae is not None
        server = self._ae.make_server(
            (self.settings.bind, port),
            ssl_context=tls,
            evt_handlers=handlers,
            server_class=_SharedPortServer if tls is None else _TlsSharedPortServer,
            admission=self._admission,
            limits=self._limits,
            hasher=self._hasher,
            listeners=self.listeners,
            port=port,
        )
        # So ae.active_associations sees this server's associations (stop() aborts them).
        self._ae._servers.append(server)
        name = "dimse-accept" if tls is None else "dimse-tls-accept"
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        self._servers.append(server)
        logger.info(
            "DIMSE service listening" + (" (TLS)" if tls else ""),
            extra={"ae_title": self.settings.ae_title, "bind": self.settings.bind, "port": port},
        )

    def stop(self) -> None:
        """Stop accepting, let running C-STOREs finish, then end the associations."""
        if not self._servers or self._ae is None:
            return
        for server in self._servers:
            server.shutdown()  # this process stops accepting; what is queued is the others'
        assert self.listeners is not None
        self.listeners.close()
        if not self.in_flight.wait_idle(_DRAIN_TIMEOUT_S):
            logger.error("shutdown: C-STORE handlers still running after the drain timeout")
        # An instance whose data had not fully arrived was never acknowledged: the sender
        # still holds it and will send it again. (An association not yet established has
        # nothing to abort; pynetdicom's state machine refuses A-ABORT before the request.)
        for association in self._ae.active_associations:
            if association.is_established:
                association.abort()
        self._servers.clear()
        logger.info("DIMSE service stopped")


def dimse_ports(settings: Settings) -> list[int]:
    """The ports DIMSE listens on: the clear one unless 0, the TLS one if set."""
    return [port for port in (settings.dimse_tls_port, settings.dimse_port) if port]
