"""The SCP (C-ECHO, C-STORE, storage commitment): one pynetdicom AE listening on the
configured port, and on the DICOM TLS port when one is set, shut down gracefully.

Several ingest processes can listen on the same ports (SO_REUSEPORT); the kernel spreads
associations across them, which is how Python ingest scales past one core (MEASURED.md).
Both listeners share the AE, so max_associations counts their associations together.
"""

from __future__ import annotations

import logging
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field

from pynetdicom import AE, _config, evt
from pynetdicom.transport import ThreadedAssociationServer

from echo_node.dimse.active import ActiveAssociations
from echo_node.dimse.commitment import handle_action
from echo_node.dimse.commitment_report import Reporter
from echo_node.dimse.contexts import supported_contexts
from echo_node.dimse.peers import handle_requested
from echo_node.dimse.space import refuse_when_disk_low
from echo_node.dimse.store import InFlight, handle_store
from echo_node.dimse.tls import handshake
from echo_node.ingest import Ingestor
from echo_node.settings import Settings
from echo_node.watermark import Watermark

logger = logging.getLogger(__name__)

# How long shutdown waits for C-STORE handlers already running to finish.
_DRAIN_TIMEOUT_S = 60.0


class _SharedPortServer(ThreadedAssociationServer):  # type: ignore[misc]
    """pynetdicom's threaded server with SO_REUSEPORT, so ingest processes share a port."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _TlsSharedPortServer(_SharedPortServer):
    """The shared-port server with the TLS handshake moved from the accept loop, where
    pynetdicom runs it, to each connection's thread (``tls.handshake``)."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        connection, address = self.socket.accept()
        return connection, address

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        assert isinstance(request, socket.socket) and self.ssl_context is not None  # TCP, TLS
        address = client_address if isinstance(client_address, str) else client_address[0]
        secured = handshake(self.ssl_context, request, address, self.ae.network_timeout)
        if secured is not None:
            super().process_request_thread(secured, client_address)


@dataclass
class DimseServer:
    settings: Settings
    ingestor: Ingestor
    reporter: Reporter
    # From echo_node.dimse.tls.server_context; None = no TLS listener.
    tls: ssl.SSLContext | None = None
    in_flight: InFlight = field(default_factory=InFlight)
    _ae: AE | None = None
    _servers: list[ThreadedAssociationServer] = field(default_factory=list)

    def start(self) -> None:
        # Received datasets go straight to a file (never decoded in memory) in the store's tmp/,
        # on the store's filesystem so the final rename is atomic. pynetdicom creates that file
        # with tempfile, whose directory is process-wide: this process is the node's.
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(self.ingestor.store.tmp)
        ae = AE(ae_title=self.settings.ae_title)
        ae.supported_contexts = supported_contexts()
        ae.maximum_associations = self.settings.max_associations
        ae.maximum_pdu_size = self.settings.max_pdu_size
        ae.network_timeout = self.settings.network_timeout_s
        ae.acse_timeout = self.settings.network_timeout_s
        ae.dimse_timeout = self.settings.network_timeout_s
        active = ActiveAssociations(self.ingestor.metrics.associations_active)
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_REQUESTED, handle_requested, [self.settings.allowed_peers]),
            (
                evt.EVT_REQUESTED,
                refuse_when_disk_low,
                [Watermark(self.ingestor.store.root, self.settings)],
            ),
            (evt.EVT_C_STORE, handle_store, [self.ingestor, self.in_flight]),
            (evt.EVT_N_ACTION, handle_action, [self.reporter]),
            (evt.EVT_ESTABLISHED, active.established),
            (evt.EVT_RELEASED, active.ended),
            (evt.EVT_ABORTED, active.ended),
            (evt.EVT_CONN_CLOSE, active.ended),
        ]
        self._ae = ae
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
            server.shutdown()
        if not self.in_flight.wait_idle(_DRAIN_TIMEOUT_S):
            logger.error("shutdown: C-STORE handlers still running after the drain timeout")
        # An instance whose data had not fully arrived was never acknowledged: the sender
        # still holds it and will send it again.
        for association in self._ae.active_associations:
            association.abort()
        self._servers.clear()
        logger.info("DIMSE service stopped")
