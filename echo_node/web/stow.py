"""STOW-RS (PS3.18 §10.5): multipart/related application/dicom, streamed part by part to tmp/.

Each part goes to its own temp file as it arrives, is put in the node's Part 10 envelope and
handed to the Ingestor: the same checks, deduplication, quarantine and durability as C-STORE.
The response is the Store Instances Response Module (PS3.18 Table 10.5.3-1) in DICOM JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydicom.dataset import Dataset
from starlette.requests import ClientDisconnect

from echo_node.envelope import rewrap
from echo_node.ingest import IngestResult, Peer, RejectedInstance, read_header
from echo_node.node import Node
from echo_node.web.dicomjson import DICOM_JSON
from echo_node.web.errors import WebError
from echo_node.web.health import refuse_when_disk_low
from echo_node.web.lookup import series_and_class
from echo_node.web.mediatypes import content_type_parameters
from echo_node.web.multipart import (
    MultipartError,
    MultipartParser,
    ReceivedPart,
    TempFileSink,
    TruncatedPart,
)
from storage.files import out_of_space

logger = logging.getLogger(__name__)

# Failure reasons (PS3.18 §10.5.3.3 refers to the C-STORE statuses of PS3.4 Annex B).
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # used for an instance of another study than the one in the URL
CANNOT_UNDERSTAND = 0xC000
# A request any of whose instances failed for lack of space is answered 507 Insufficient
# Storage (RFC 4918 §11.5), with the same Store Instances Response body: the client retries
# it later, and what was stored meanwhile comes back as duplicates (success).
INSUFFICIENT_STORAGE = 507
# ErrorComment is LO: at most 64 characters.
_COMMENT_LIMIT = 64

_BODY = {
    "content": {
        'multipart/related; type="application/dicom"': {
            "schema": {"type": "string", "format": "binary"}
        }
    },
    "required": True,
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "every instance stored", "content": {DICOM_JSON: {}}},
    202: {"description": "some instances stored, some failed", "content": {DICOM_JSON: {}}},
    409: {"description": "no instance stored", "content": {DICOM_JSON: {}}},
    507: {"description": "the node is out of space", "content": {DICOM_JSON: {}}},
}


@dataclass(frozen=True)
class PartOutcome:
    stored: bool
    sop_class_uid: str | None
    sop_instance_uid: str | None
    series_instance_uid: str | None
    study_instance_uid: str | None
    failure_reason: int = 0
    comment: str = ""
    out_of_space: bool = False


def make_router(node: Node, write: Any) -> APIRouter:
    router = APIRouter(tags=["STOW-RS"], dependencies=[Depends(write)])

    @router.post(
        "/studies", openapi_extra={"requestBody": _BODY}, responses=_RESPONSES, status_code=200
    )
    async def store_instances(request: Request) -> JSONResponse:
        """Store instances (multipart/related; type="application/dicom")."""
        return await _store(node, request, None)

    @router.post(
        "/studies/{study}",
        openapi_extra={"requestBody": _BODY},
        responses=_RESPONSES,
        status_code=200,
    )
    async def store_study_instances(study: str, request: Request) -> JSONResponse:
        """Store instances that must belong to the study in the path."""
        return await _store(node, request, study)

    return router


async def _store(node: Node, request: Request, study: str | None) -> JSONResponse:
    refuse_when_disk_low(node)
    boundary = _boundary(request.headers.get("content-type", ""))
    sink = TempFileSink(node.store, ".stow")
    parser = MultipartParser(boundary, sink)
    address = request.client.host if request.client else None
    peer = Peer(ae_title=None, address=address, transport="stowrs")
    outcomes: list[PartOutcome] = []
    problem = ""
    try:
        async for chunk in request.stream():
            parser.feed(chunk)
            await _ingest_done(node, sink, peer, study, outcomes)
        parser.close()
    except TruncatedPart:
        pass  # the cut part itself is reported as failed
    except MultipartError as exc:
        problem = str(exc)
    except ClientDisconnect:
        sink.discard()
        raise WebError(400, "client disconnected before the body was complete") from None
    except OSError as exc:  # disk full or the data directory gone: nothing half-kept
        sink.discard()
        logger.error("STOW-RS body could not be written", extra={"error": type(exc).__name__})
        raise WebError(507, f"the node cannot store the body: {exc.strerror}") from None
    # Also ingests the part cut off by a truncated body (quarantined, not stored).
    await _ingest_done(node, sink, peer, study, outcomes)
    sink.discard()
    if problem:
        if not outcomes:
            raise WebError(400, f"malformed multipart body: {problem}")
        outcomes.append(PartOutcome(False, None, None, None, None, CANNOT_UNDERSTAND, problem))
    if not outcomes:
        raise WebError(400, "the request contains no part")
    return _response(request, outcomes, study)


def _boundary(content_type: str) -> str:
    media_type, parameters = content_type_parameters(content_type)
    if media_type != "multipart/related":
        raise WebError(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    part_type = parameters.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise WebError(415, f"part type {part_type} is not supported; use application/dicom")
    boundary = parameters.get("boundary")
    if not boundary:
        raise WebError(400, "Content-Type has no boundary parameter")
    return boundary


async def _ingest_done(
    node: Node, sink: TempFileSink, peer: Peer, study: str | None, outcomes: list[PartOutcome]
) -> None:
    while sink.done:
        part = sink.done.pop(0)
        outcomes.append(await anyio.to_thread.run_sync(_ingest_part, node, part, peer, study))


def _ingest_part(node: Node, part: ReceivedPart, peer: Peer, study: str | None) -> PartOutcome:
    if not part.complete:
        reason = "body ended inside this part"
        node.ingestor.refuse(part.path, peer, reason)
        return PartOutcome(False, None, None, None, None, CANNOT_UNDERSTAND, reason)
    media_type, _ = content_type_parameters(part.headers.get("content-type", "application/dicom"))
    if media_type != "application/dicom":
        part.path.unlink(missing_ok=True)
        reason = f"part type {media_type} is not application/dicom"
        return PartOutcome(False, None, None, None, None, CANNOT_UNDERSTAND, reason)
    wrapped = node.store.new_temp_path(".dcm")
    try:
        rewrap(part.path, wrapped)
    except OSError as exc:  # writing the copy failed (disk full): nothing is kept
        wrapped.unlink(missing_ok=True)
        part.path.unlink(missing_ok=True)
        return _not_written(node, exc)
    except Exception:  # not readable DICOM: ingest quarantines the original bytes with why
        wrapped.unlink(missing_ok=True)
        return _outcome(node, node.ingestor.ingest(part.path, peer))
    part.path.unlink()
    if study is not None:
        mismatch = _other_study(wrapped, study)
        if mismatch is not None:
            node.ingestor.refuse(wrapped, peer, "instance of another study than the request's")
            return mismatch
    return _outcome(node, node.ingestor.ingest(wrapped, peer))


def _not_written(node: Node, exc: OSError) -> PartOutcome:
    full = out_of_space(exc)
    logger.error(
        "STOW-RS part not stored: it could not be written; nothing kept",
        extra={"error": type(exc).__name__, "out_of_space": full},
    )
    node.metrics.ingested("stowrs", "failed", 0, None)
    code, comment = (OUT_OF_RESOURCES, "out of space") if full else (PROCESSING_FAILURE, "")
    return PartOutcome(
        False, None, None, None, None, code, comment or "storage error", out_of_space=full
    )


def _other_study(path: Path, study: str) -> PartOutcome | None:
    try:
        header = read_header(path)
    except RejectedInstance:
        return None  # ingest rejects it with the precise reason
    if header.study_instance_uid == study:
        return None
    return PartOutcome(
        False,
        header.sop_class_uid,
        header.sop_instance_uid,
        header.series_instance_uid,
        header.study_instance_uid,
        DOES_NOT_MATCH,
        "StudyInstanceUID differs from the request URL's",
    )


def _outcome(node: Node, result: IngestResult) -> PartOutcome:
    if not result.acknowledged:
        if result.out_of_space:
            code = OUT_OF_RESOURCES
        elif result.outcome == "failed":
            code = PROCESSING_FAILURE
        else:
            code = CANNOT_UNDERSTAND
        return PartOutcome(
            False,
            None,
            result.sop_instance_uid,
            None,
            None,
            code,
            result.reason,
            out_of_space=result.out_of_space,
        )
    assert result.sop_instance_uid is not None and result.version is not None
    with node.sessions() as session:
        series, sop_class = series_and_class(session, result.sop_instance_uid, result.version)
    return PartOutcome(True, sop_class, result.sop_instance_uid, series, result.study_instance_uid)


def _response(request: Request, outcomes: list[PartOutcome], study: str | None) -> JSONResponse:
    base = f"{str(request.base_url).rstrip('/')}/dicom-web"
    response = Dataset()
    studies = {o.study_instance_uid for o in outcomes if o.stored}
    if study is not None or len(studies) == 1:
        response.RetrieveURL = f"{base}/studies/{study or next(iter(studies))}"
    referenced, failed = [], []
    for outcome in outcomes:
        item = Dataset()
        item.ReferencedSOPClassUID = outcome.sop_class_uid or ""
        item.ReferencedSOPInstanceUID = outcome.sop_instance_uid or ""
        if outcome.stored:
            item.RetrieveURL = (
                f"{base}/studies/{outcome.study_instance_uid}/series/"
                f"{outcome.series_instance_uid}/instances/{outcome.sop_instance_uid}"
            )
            referenced.append(item)
        else:
            item.FailureReason = outcome.failure_reason
            item.ErrorComment = outcome.comment[:_COMMENT_LIMIT]
            failed.append(item)
    if referenced:
        response.ReferencedSOPSequence = referenced
    if failed:
        response.FailedSOPSequence = failed
    status = 200 if not failed else (202 if referenced else 409)
    if any(outcome.out_of_space for outcome in outcomes):
        status = INSUFFICIENT_STORAGE
    logger.info(
        "STOW-RS request done",
        extra={"stored": len(referenced), "failed": len(failed), "status": status},
    )
    return JSONResponse(response.to_json_dict(), status, media_type=DICOM_JSON)
