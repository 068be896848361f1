"""WADO-RS (PS3.18 §10.4): instances as stored, metadata, frames and rendered frames."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom import dcmread
from pydicom.uid import UID

from ai.video import is_video
from echo_node.node import Node
from echo_node.web.dependencies import NodeDep
from echo_node.web.dicomjson import DICOM_JSON, to_json, without_bulk_data
from echo_node.web.errors import WebError
from echo_node.web.frames import OCTET_STREAM, VIDEO_FRAMES, frame_info, read_frame, render_frame
from echo_node.web.lookup import StoredInstance, find_instances
from echo_node.web.mediatypes import accepted, wants

_CHUNK = 1 << 20
_RENDERED = ("image/jpeg", "image/png")

_MULTIPART_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "multipart/related", "content": {"multipart/related": {}}},
    404: {"description": "not found"},
    406: {"description": "no acceptable media type"},
}
_JSON_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "DICOM JSON", "content": {DICOM_JSON: {}}},
    404: {"description": "not found"},
}
_IMAGE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "the frame", "content": {"image/jpeg": {}, "image/png": {}}},
    404: {"description": "not found"},
    406: {"description": "no acceptable media type"},
}
# The frame list of a Retrieve Frames URL: numbers from 1, comma-separated.
_FRAME_LIST = Path(pattern=r"^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*$")

# The app includes it with the read scope's dependency (echo_node.web.app).
router = APIRouter(tags=["WADO-RS"])


@router.get("/studies/{study}", responses=_MULTIPART_DOC, response_class=Response)
async def retrieve_study(node: NodeDep, request: Request, study: str) -> StreamingResponse:
    return await _retrieve(node, request, study)


@router.get("/studies/{study}/series/{series}", responses=_MULTIPART_DOC, response_class=Response)
async def retrieve_series(
    node: NodeDep, request: Request, study: str, series: str
) -> StreamingResponse:
    return await _retrieve(node, request, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    responses=_MULTIPART_DOC,
    response_class=Response,
)
async def retrieve_instance(
    node: NodeDep, request: Request, study: str, series: str, instance: str
) -> StreamingResponse:
    return await _retrieve(node, request, study, series, instance)


@router.get("/studies/{study}/metadata", responses=_JSON_DOC)
async def study_metadata(node: NodeDep, study: str) -> JSONResponse:
    return await _metadata_response(node, study)


@router.get("/studies/{study}/series/{series}/metadata", responses=_JSON_DOC)
async def series_metadata(node: NodeDep, study: str, series: str) -> JSONResponse:
    return await _metadata_response(node, study, series)


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata", responses=_JSON_DOC)
async def instance_metadata(node: NodeDep, study: str, series: str, instance: str) -> JSONResponse:
    return await _metadata_response(node, study, series, instance)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    responses=_MULTIPART_DOC,
    response_class=Response,
)
async def retrieve_frames(
    node: NodeDep,
    request: Request,
    study: str,
    series: str,
    instance: str,
    frames: Annotated[str, _FRAME_LIST],
) -> Response:
    numbers = _frame_numbers(frames)
    (item,) = await _instances(node, study, series, instance)
    info = await anyio.to_thread.run_sync(frame_info, item.path)
    if is_video(info.transfer_syntax_uid):
        raise WebError(406, VIDEO_FRAMES.format(name=UID(info.transfer_syntax_uid).name))
    if max(numbers) > info.count:
        raise WebError(404, f"frame {max(numbers)} does not exist (the instance has {info.count})")
    for accept in accepted(request):
        if not accept.multipart and accept.media_type != "*/*":
            continue
        syntax_ok = accept.transfer_syntax in (None, "*", info.transfer_syntax_uid)
        if wants(accept, info.media_type) and syntax_ok:
            return _multipart_frames(item.path, numbers, info.media_type)
        # PS3.18 §8.7.3.5: octet-stream with transfer-syntax=* takes the frames in whatever
        # syntax they are stored in (what OHIF asks for).
        if accept.media_type == OCTET_STREAM and accept.transfer_syntax == "*":
            return _multipart_frames(item.path, numbers, OCTET_STREAM)
    raise WebError(
        406,
        f"frames are served as stored ({info.media_type}, transfer syntax "
        f"{info.transfer_syntax_uid}); this node does not transcode them",
    )


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    responses=_IMAGE_DOC,
    response_class=Response,
)
async def instance_rendered(
    node: NodeDep, request: Request, study: str, series: str, instance: str
) -> Response:
    """The first frame, rendered."""
    return await _rendered(node, request, study, series, instance, 1)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
    responses=_IMAGE_DOC,
    response_class=Response,
)
async def frame_rendered(
    node: NodeDep,
    request: Request,
    study: str,
    series: str,
    instance: str,
    frame: Annotated[int, Path(ge=1, le=999_999_999)],
) -> Response:
    return await _rendered(node, request, study, series, instance, frame)


async def _instances(
    node: Node, study: str, series: str | None = None, instance: str | None = None
) -> list[StoredInstance]:
    def find() -> list[StoredInstance]:
        with node.sessions() as session:
            return find_instances(session, node.store, study, series, instance)

    found = await anyio.to_thread.run_sync(find)
    if not found:
        raise WebError(404, "no such study, series or instance")
    return found


async def _retrieve(
    node: Node,
    request: Request,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> StreamingResponse:
    instances = await _instances(node, study, series, instance)
    syntaxes = {item.transfer_syntax_uid for item in instances}
    for accept in accepted(request):
        if not accept.multipart and accept.media_type != "*/*":
            continue
        if not wants(accept, "application/dicom"):
            continue
        wanted = accept.transfer_syntax
        if wanted in (None, "*") or syntaxes == {wanted}:
            return _multipart_files(instances)
    raise WebError(
        406,
        "instances are served as stored: accept multipart/related; "
        'type="application/dicom" with transfer-syntax=* or the stored one '
        f"({', '.join(sorted(syntaxes))})",
    )


async def _metadata_response(
    node: Node, study: str, series: str | None = None, instance: str | None = None
) -> JSONResponse:
    instances = await _instances(node, study, series, instance)
    body = await anyio.to_thread.run_sync(_metadata, instances)
    return JSONResponse(body, media_type=DICOM_JSON)


async def _rendered(
    node: Node, request: Request, study: str, series: str, instance: str, number: int
) -> Response:
    media_type = next(
        (
            media
            for accept in accepted(request)
            for media in _RENDERED
            if not accept.multipart and wants(accept, media)
        ),
        None,
    )
    if media_type is None:
        raise WebError(406, "rendered frames are image/jpeg or image/png")
    (item,) = await _instances(node, study, series, instance)
    data = await anyio.to_thread.run_sync(render_frame, item.path, number, media_type)
    return Response(data, media_type=media_type)


def _frame_numbers(text: str) -> list[int]:
    """The frame list of a Retrieve Frames URL. PS3.18 makes it a list of non-duplicate
    frame numbers; repeats are refused, so one URL can ask for each frame at most once
    (else a few KB of URL streams an instance many times over)."""
    try:
        numbers = [int(item) for item in text.split(",")]
    except ValueError:
        raise WebError(400, "frames must be a comma-separated list of numbers from 1") from None
    if not numbers or len(numbers) > 10_000 or min(numbers) < 1:
        raise WebError(400, "frames must be a comma-separated list of numbers from 1")
    if len(set(numbers)) != len(numbers):
        raise WebError(400, "frames must not repeat a frame number")
    return numbers


def _metadata(instances: list[StoredInstance]) -> list[dict[str, Any]]:
    out = []
    for item in instances:
        header = dcmread(item.path, stop_before_pixels=True, defer_size=4096)
        out.append(to_json(without_bulk_data(header)))
    return out


def _multipart_files(instances: list[StoredInstance]) -> StreamingResponse:
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for item in instances:
            yield (
                f"--{boundary}\r\nContent-Type: application/dicom; "
                f"transfer-syntax={item.transfer_syntax_uid}\r\n\r\n"
            ).encode("ascii")
            with item.path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode("ascii")

    return StreamingResponse(
        body(),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


def _multipart_frames(path: FilePath, numbers: list[int], media: str) -> StreamingResponse:
    """Frames read one at a time while sending: a request for all frames of a 500 MB clip
    holds one frame in memory, not the clip."""
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for number in numbers:
            frame = read_frame(path, number)
            head = f"--{boundary}\r\nContent-Type: {media}"
            if media != OCTET_STREAM or frame.media_type != OCTET_STREAM:
                head += f"; transfer-syntax={frame.transfer_syntax_uid}"
            yield head.encode("ascii") + b"\r\n\r\n"
            yield frame.data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode("ascii")

    return StreamingResponse(
        body(), media_type=f'multipart/related; type="{media}"; boundary={boundary}'
    )
