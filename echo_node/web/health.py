"""Probes on the HTTP port: GET /healthz (alive) and GET /readyz (ready to take data).

/healthz answers as long as the process serves HTTP and checks nothing else, so a slow database
never gets a live node restarted by its supervisor. /readyz checks what taking an instance
needs: the database answers, the store takes a file (written and fsynced in tmp/, where data
being received goes) and free space is above the watermark (echo_node.watermark); 503 names
what failed. Both are open, like a health check must be for systemd, Docker or Kubernetes:
they tell nothing about patients. The same watermark turns STOW-RS away with 507.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from echo_node.node import Node
from echo_node.web.errors import WebError


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    detail: str


def refuse_when_disk_low(node: Node) -> None:
    """Raise 507 Insufficient Storage (RFC 4918) while free space is below the watermark."""
    space = node.watermark.check()
    if not space.ok:
        raise WebError(
            507,
            "the node takes no new data: free disk space is below its watermark "
            f"({space.describe()}); try again later",
            headers={"Retry-After": "300"},
        )


def readiness(node: Node) -> list[Probe]:
    """Each condition for taking data, checked now (blocking: database and disk)."""
    probes = []
    try:
        with node.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        probes.append(Probe("database", True, "reachable"))
    except SQLAlchemyError as exc:
        probes.append(Probe("database", False, f"unreachable: {type(exc).__name__}"))
    try:
        with tempfile.NamedTemporaryFile(dir=node.store.tmp, prefix="readyz-") as probe:
            probe.write(b"echo-node readyz")
            probe.flush()
            os.fsync(probe.fileno())
        probes.append(Probe("store", True, f"{node.store.tmp} writable"))
    except OSError as exc:
        probes.append(Probe("store", False, f"{node.store.tmp} not writable: {exc.strerror}"))
    space = node.watermark.check()
    probes.append(Probe("disk", space.ok, space.describe()))
    return probes


def make_router(node: Node) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "alive"})

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        probes = await anyio.to_thread.run_sync(readiness, node)
        ready = all(probe.ok for probe in probes)
        body = {"status": "ready" if ready else "not ready", "checks": [asdict(p) for p in probes]}
        return JSONResponse(body, 200 if ready else 503)

    return router
