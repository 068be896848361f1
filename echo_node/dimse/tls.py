"""DICOM TLS (PS3.15 B.1, Basic TLS Secure Transport Connection Profile): the SCP's listener
and the associations the node opens (export, storage commitment reports).

The context is built once at start from the settings, so a missing or wrong file stops the
node naming its key instead of failing each association later. The handshake runs in the
connection's own thread (see ``handshake``).
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import cast

from echo_node.dimse.pdu_guard import GuardedSSLSocket
from echo_node.settings import ConfigError, RemoteNode, Settings

logger = logging.getLogger(__name__)

_Name = tuple[tuple[tuple[str, str], ...], ...]  # getpeercert()'s relative distinguished names


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context; None when dimse_tls_port is 0."""
    if not settings.dimse_tls_port:
        return None
    (cert_key, cert), (key_key, key) = settings.dimse_tls_files
    _check_readable(cert_key, cert)
    _check_readable(key_key, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Accepted connections become sockets whose reads pdu_guard checks, like clear ones.
    context.sslsocket_class = GuardedSSLSocket
    # BCP 195 (which PS3.15 B.1's current profiles follow): nothing older than TLS 1.2.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=lambda: _encrypted(key_key, key))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{cert_key} ({cert}) and {key_key} ({key}) are not a PEM certificate chain and "
            f"its unencrypted private key: {exc.reason or exc}"
        ) from None
    if settings.dimse_tls_ca_file:
        _check_readable("dimse_tls_ca_file", settings.dimse_tls_ca_file)
        try:
            context.load_verify_locations(cafile=settings.dimse_tls_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"dimse_tls_ca_file ({settings.dimse_tls_ca_file}) holds no PEM certificate: "
                f"{exc.reason or exc}"
            ) from None
        # OPTIONAL still rejects a certificate the CA did not sign; it only lets a peer
        # show none.
        context.verify_mode = (
            ssl.CERT_REQUIRED if settings.dimse_tls_require_client_cert else ssl.CERT_OPTIONAL
        )
    return context


def client_context(destination: RemoteNode) -> ssl.SSLContext:
    """For associations the node opens to a dimse destination or source with tls = true:
    verify the peer (its CA file or the system store, and its host name); show our certificate
    if set."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=destination.tls_ca_file or None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if destination.tls_certificate and destination.tls_private_key:
        context.load_cert_chain(destination.tls_certificate, destination.tls_private_key)
    return context


def _check_readable(key: str, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{key} ({path}) cannot be read: {exc.strerror or exc}") from None


def _encrypted(key: str, path: str) -> bytes:
    # Called only for an encrypted key; without it OpenSSL would prompt on the terminal and
    # hang a service.
    raise ConfigError(f"{key} ({path}) is encrypted; give the key without a passphrase")


def handshake(
    context: ssl.SSLContext, connection: socket.socket, address: str, timeout_s: float | None
) -> ssl.SSLSocket | None:
    """The TLS side of an accepted connection, or None (logged) if the handshake fails.

    pynetdicom handshakes in its accept loop, where one peer that connects and sends nothing
    would stall every other; here it runs in the connection's thread, bounded by
    ``timeout_s`` (artim_timeout_s: the association request's deadline covers it too).
    """
    connection.settimeout(timeout_s)
    try:
        secured = context.wrap_socket(connection, server_side=True)
    except (ssl.SSLEOFError, TimeoutError, ConnectionError) as exc:
        # Port probes and load balancer checks connect and leave.
        logger.info("TLS connection closed before the handshake", extra=_why(address, exc))
        connection.close()
        return None
    except OSError as exc:  # ssl.SSLError: no certificate, untrusted, not TLS at all
        logger.warning("TLS handshake refused", extra=_why(address, exc))
        connection.close()
        return None
    secured.settimeout(None)  # as pynetdicom's accepted sockets are: it times out itself
    logger.debug(
        "TLS connection",
        extra={
            "peer_address": address,
            "tls_version": secured.version(),
            "peer_certificate": _subject(secured),
        },
    )
    return secured


def _why(address: str, exc: OSError) -> dict[str, str]:
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return {"peer_address": address, "reason": str(reason)}


def _subject(secured: ssl.SSLSocket) -> str:
    """The peer certificate's subject, e.g. "commonName=US_ROOM1" (a device, not a person)."""
    subject = cast(_Name, (secured.getpeercert() or {}).get("subject", ()))
    return ", ".join(f"{name}={value}" for rdn in subject for name, value in rdn)
