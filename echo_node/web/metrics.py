"""GET /metrics: Prometheus text format (see echo_node.metrics for what is counted)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from echo_node.node import Node
from echo_node.overview import QueueState, queue_state

# The content type of the text exposition format, version 0.0.4.
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def make_router(node: Node, dependencies: list[Any]) -> APIRouter:
    router = APIRouter(tags=["metrics"], dependencies=[Depends(d) for d in dependencies])

    # Not in the OpenAPI schema, which describes the DICOMweb API.
    @router.get("/metrics", response_class=Response, include_in_schema=False)
    async def metrics() -> Response:
        """Counters, histograms and gauges of this node, for Prometheus."""
        # Imported here: see echo_node.metrics (multiprocess mode).
        from echo_node.metrics.scrape import exposition

        def read() -> QueueState:
            return queue_state(node.sessions, node.store, node.settings)

        # Reading the database and the metric files blocks: off the event loop.
        body = await anyio.to_thread.run_sync(exposition, node.metrics.registry, read)
        return Response(body, media_type=_TEXT_FORMAT)

    return router
