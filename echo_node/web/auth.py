"""Bearer tokens (sha256 at rest) with scopes, and the FastAPI dependencies that check them.

"write" includes "read": an uploader usually checks what it sent. Requests from loopback may
read without a token when ``anonymous_loopback_read`` is set; writes always need a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from echo_node.web.errors import WebError
from storage.models import ApiToken

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
_GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="echo-node"'}


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str | None
    scope: str
    created_at: datetime
    revoked_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_token(sessions: sessionmaker[Session], scope: Scope, name: str | None) -> tuple[int, str]:
    """Create a token; returns its id and the token itself, which is not kept anywhere."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    token = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        row = ApiToken(
            name=name,
            scope=scope,
            token_sha256=hash_token(token),
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        session.add(row)
        session.flush()
        return row.id, token


def list_tokens(sessions: sessionmaker[Session]) -> list[TokenInfo]:
    with sessions() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.id))
        return [TokenInfo(r.id, r.name, r.scope, r.created_at, r.revoked_at) for r in rows]


def revoke_token(sessions: sessionmaker[Session], token_id: int) -> bool:
    """Revoke by id; False when there is no such token or it was already revoked."""
    with sessions.begin() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = datetime.now(UTC)
        return True


def token_scope(sessions: sessionmaker[Session], token: str) -> str | None:
    """The scope of a valid, unrevoked token, else None."""
    digest = hash_token(token)
    with sessions() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
    # The lookup is by hash, so timing says nothing about the token; compare anyway.
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.token_sha256, digest)
    ):
        return None
    return row.scope


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def require(
    scope: Scope,
    sessions: sessionmaker[Session],
    anonymous_loopback_read: bool,
    cookie: str | None = None,
) -> Callable[[Request], None]:
    """A dependency that lets the request through only with a token granting ``scope``.

    With ``cookie``, a GET or HEAD without an Authorization header may carry the token in that
    cookie instead (the viewer's login sets it SameSite=Strict, so other sites' pages cannot
    send it); nothing that writes accepts it.
    """

    def check(request: Request) -> None:
        header = request.headers.get("authorization")
        if header is None:
            from_cookie = request.cookies.get(cookie) if cookie else None
            if from_cookie and request.method in ("GET", "HEAD"):
                header = f"Bearer {from_cookie}"
            else:
                client = request.client.host if request.client else None
                if scope == "read" and anonymous_loopback_read and is_loopback(client):
                    return
                raise WebError(401, "authentication required: send a bearer token", _CHALLENGE)
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise WebError(401, "authentication required: send a bearer token", _CHALLENGE)
        granted = token_scope(sessions, token.strip())
        if granted is None:
            raise WebError(401, "invalid or revoked token", _CHALLENGE)
        if scope not in _GRANTS.get(granted, frozenset()):
            raise WebError(403, f"token scope '{granted}' does not allow {scope}")

    return check
