"""WADO-RS (PS3.18 §10.4): instances as stored, metadata, frames and rendered frames."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom import dcmread
from pydicom.uid import UID

from ai.video import is_video
from echo_node.node import Node
from echo_node.web.dicomjson import DICOM_JSON, to_json, without_bulk_data
from echo_node.web.errors import WebError
from echo_node.web.frames import OCTET_STREAM, VIDEO_FRAMES, frame_info, read_frame, render_frame
from echo_node.web.lookup import StoredInstance, find_instances
from echo_node.web.multipart import _split_unquoted, content_type_parameters

_CHUNK = 1 << 20
_RENDERED = ("image/jpeg", "image/png")


@dataclass(frozen=True)
class Accepted:
    media_type: str  # for multipart/related: the type parameter
    multipart: bool
    transfer_syntax: str | None


def accepted(request: Request) -> list[Accepted]:
    """The Accept header's media ranges in order (q-values are not weighed, only listed)."""
    header = request.headers.get("accept", "") or "*/*"
    result = []
    for item in _split_unquoted(header, ","):
        if not item.strip():
            continue
        media_type, params = content_type_parameters(item)
        if media_type == "multipart/related":
            result.append(
                Accepted(params.get("type", "*/*").lower(), True, params.get("transfer-syntax"))
            )
        else:
            result.append(Accepted(media_type, False, params.get("transfer-syntax")))
    return result


def _wants(accept: Accepted, media_type: str) -> bool:
    kind = media_type.split("/")[0]
    return accept.media_type in ("*/*", f"{kind}/*", media_type)


def make_router(node: Node, read: Any) -> APIRouter:
    router = APIRouter(tags=["WADO-RS"], dependencies=[Depends(read)])
    multipart_doc: dict[int | str, dict[str, Any]] = {
        200: {"description": "multipart/related", "content": {"multipart/related": {}}},
        404: {"description": "not found"},
        406: {"description": "no acceptable media type"},
    }
    json_doc: dict[int | str, dict[str, Any]] = {
        200: {"description": "DICOM JSON", "content": {DICOM_JSON: {}}},
        404: {"description": "not found"},
    }

    async def _instances(
        study: str, series: str | None = None, instance: str | None = None
    ) -> list[StoredInstance]:
        def find() -> list[StoredInstance]:
            with node.sessions() as session:
                return find_instances(session, node.store, study, series, instance)

        found = await anyio.to_thread.run_sync(find)
        if not found:
            raise WebError(404, "no such study, series or instance")
        return found

    async def retrieve(
        request: Request, study: str, series: str | None = None, instance: str | None = None
    ) -> StreamingResponse:
        instances = await _instances(study, series, instance)
        syntaxes = {item.transfer_syntax_uid for item in instances}
        for accept in accepted(request):
            if not accept.multipart and accept.media_type != "*/*":
                continue
            if not _wants(accept, "application/dicom"):
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

    @router.get("/studies/{study}", responses=multipart_doc, response_class=Response)
    async def retrieve_study(request: Request, study: str) -> StreamingResponse:
        return await retrieve(request, study)

    @router.get(
        "/studies/{study}/series/{series}", responses=multipart_doc, response_class=Response
    )
    async def retrieve_series(request: Request, study: str, series: str) -> StreamingResponse:
        return await retrieve(request, study, series)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}",
        responses=multipart_doc,
        response_class=Response,
    )
    async def retrieve_instance(
        request: Request, study: str, series: str, instance: str
    ) -> StreamingResponse:
        return await retrieve(request, study, series, instance)

    async def metadata(
        study: str, series: str | None = None, instance: str | None = None
    ) -> JSONResponse:
        instances = await _instances(study, series, instance)
        body = await anyio.to_thread.run_sync(_metadata, instances)
        return JSONResponse(body, media_type=DICOM_JSON)

    @router.get("/studies/{study}/metadata", responses=json_doc)
    async def study_metadata(study: str) -> JSONResponse:
        return await metadata(study)

    @router.get("/studies/{study}/series/{series}/metadata", responses=json_doc)
    async def series_metadata(study: str, series: str) -> JSONResponse:
        return await metadata(study, series)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/metadata", responses=json_doc
    )
    async def instance_metadata(study: str, series: str, instance: str) -> JSONResponse:
        return await metadata(study, series, instance)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
        responses=multipart_doc,
        response_class=Response,
    )
    async def retrieve_frames(
        request: Request,
        study: str,
        series: str,
        instance: str,
        frames: Annotated[str, Path(pattern=r"^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*$")],
    ) -> Response:
        numbers = _frame_numbers(frames)
        (item,) = await _instances(study, series, instance)
        info = await anyio.to_thread.run_sync(frame_info, item.path)
        if is_video(info.transfer_syntax_uid):
            name = UID(info.transfer_syntax_uid).name
            raise WebError(406, VIDEO_FRAMES.format(name=name))
        if max(numbers) > info.count:
            raise WebError(
                404, f"frame {max(numbers)} does not exist (the instance has {info.count})"
            )
        for accept in accepted(request):
            if not accept.multipart and accept.media_type != "*/*":
                continue
            syntax_ok = accept.transfer_syntax in (None, "*", info.transfer_syntax_uid)
            if _wants(accept, info.media_type) and syntax_ok:
                return _multipart_frames(item.path, numbers, info.media_type)
            # PS3.18 §8.7.3.5: octet-stream with transfer-syntax=* takes the frames in
            # whatever syntax they are stored in (what OHIF asks for).
            if accept.media_type == OCTET_STREAM and accept.transfer_syntax == "*":
                return _multipart_frames(item.path, numbers, OCTET_STREAM)
        raise WebError(
            406,
            f"frames are served as stored ({info.media_type}, transfer syntax "
            f"{info.transfer_syntax_uid}); this node does not transcode them",
        )

    async def rendered(
        request: Request, study: str, series: str, instance: str, number: int
    ) -> Response:
        media_type = next(
            (
                media
                for accept in accepted(request)
                for media in _RENDERED
                if not accept.multipart and _wants(accept, media)
            ),
            None,
        )
        if media_type is None:
            raise WebError(406, "rendered frames are image/jpeg or image/png")
        (item,) = await _instances(study, series, instance)
        data = await anyio.to_thread.run_sync(render_frame, item.path, number, media_type)
        return Response(data, media_type=media_type)

    image_doc: dict[int | str, dict[str, Any]] = {
        200: {"description": "the frame", "content": {"image/jpeg": {}, "image/png": {}}},
        404: {"description": "not found"},
        406: {"description": "no acceptable media type"},
    }

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/rendered",
        responses=image_doc,
        response_class=Response,
    )
    async def instance_rendered(
        request: Request, study: str, series: str, instance: str
    ) -> Response:
        """The first frame, rendered."""
        return await rendered(request, study, series, instance, 1)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
        responses=image_doc,
        response_class=Response,
    )
    async def frame_rendered(
        request: Request,
        study: str,
        series: str,
        instance: str,
        frame: Annotated[int, Path(ge=1, le=999_999_999)],
    ) -> Response:
        return await rendered(request, study, series, instance, frame)

    return router


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
