"""The SCP (C-ECHO, C-STORE, storage commitment): one pynetdicom AE listening on the
configured port, shut down gracefully.

Several ingest processes can listen on the same port (SO_REUSEPORT); the kernel spreads
associations across them, which is how Python ingest scales past one core (MEASURED.md).
"""

from __future__ import annotations

import logging
import socket
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
from echo_node.dimse.store import InFlight, handle_store
from echo_node.ingest import Ingestor
from echo_node.settings import Settings

logger = logging.getLogger(__name__)

# How long shutdown waits for C-STORE handlers already running to finish.
_DRAIN_TIMEOUT_S = 60.0


class _SharedPortServer(ThreadedAssociationServer):  # type: ignore[misc]
    """pynetdicom's threaded server with SO_REUSEPORT, so ingest processes share a port."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


@dataclass
class DimseServer:
    settings: Settings
    ingestor: Ingestor
    reporter: Reporter
    in_flight: InFlight = field(default_factory=InFlight)
    _ae: AE | None = None
    _server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

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
            (evt.EVT_C_STORE, handle_store, [self.ingestor, self.in_flight]),
            (evt.EVT_N_ACTION, handle_action, [self.reporter]),
            (evt.EVT_ESTABLISHED, active.established),
            (evt.EVT_RELEASED, active.ended),
            (evt.EVT_ABORTED, active.ended),
            (evt.EVT_CONN_CLOSE, active.ended),
        ]
        server = ae.make_server(
            (self.settings.bind, self.settings.dimse_port),
            evt_handlers=handlers,
            server_class=_SharedPortServer,
        )
        ae._servers.append(server)  # so ae.active_associations sees this server's associations
        threading.Thread(target=server.serve_forever, name="dimse-accept", daemon=True).start()
        self._ae, self._server = ae, server
        logger.info(
            "DIMSE service listening",
            extra={
                "ae_title": self.settings.ae_title,
                "bind": self.settings.bind,
                "port": self.port,
            },
        )

    def stop(self) -> None:
        """Stop accepting, let running C-STOREs finish, then end the associations."""
        if self._server is None or self._ae is None:
            return
        self._server.shutdown()
        if not self.in_flight.wait_idle(_DRAIN_TIMEOUT_S):
            logger.error("shutdown: C-STORE handlers still running after the drain timeout")
        # An instance whose data had not fully arrived was never acknowledged: the sender
        # still holds it and will send it again.
        for association in self._ae.active_associations:
            association.abort()
        self._server = None
        logger.info("DIMSE service stopped")
