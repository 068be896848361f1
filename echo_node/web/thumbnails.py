"""PS3.18 thumbnails (study, series, instance, frames) and study- and series-level rendered
resources: what a study browser (OHIF's) asks for beside the frames.

A thumbnail is one representative image: for a clip its Representative Frame Number where
set, else its middle frame, cut to the ultrasound regions (the banner outside them is where
scanners burn in the patient's name, and PS3.18 wants thumbnails free of identifying
information); a series or study is shown by its first image instance; an SR or PDF by a small
icon of its kind. Thumbnails are kept in memory keyed by the instance's sha256 and the
parameters, and carry an ETag so a browser asks again cheaply.

A rendered series or study is image/jpeg or image/png: one image (the series' representative
frame) for a single-part Accept, or every image instance's representative frame, one part each,
for ``multipart/related; type="image/jpeg"``. Any other media type (video, text/html,
application/pdf) is 406: the node produces none.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse

from echo_node import __version__
from echo_node.node import Node
from echo_node.web.errors import WebError
from echo_node.web.lookup import StoredInstance, find_instances
from echo_node.web.mediatypes import Accepted, accepted
from echo_node.web.render import (
    RENDERED_TYPES,
    Viewport,
    encode,
    fit,
    frame_image,
    icon,
    imaging_area,
    parse_quality,
    parse_viewport,
    read_header,
    representative_frame,
)

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 128  # when the request gives no viewport
THUMBNAIL_LARGEST = 1024
RENDERED_LARGEST = 4096
THUMBNAIL_QUALITY = 80
RENDERED_QUALITY = 90
_FRAMES = r"^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*$"


def document_label(sop_class_uid: str) -> str | None:
    """The icon label of a SOP class without an image to show, None for image classes."""
    if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "SR"  # Structured Reports, Key Object Selection among them
    if sop_class_uid == "1.2.840.10008.5.1.4.1.1.104.1":
        return "PDF"
    if sop_class_uid.startswith(("1.2.840.10008.5.1.4.1.1.104.", "1.2.840.10008.5.1.4.1.1.11.")):
        return "DOC"  # other encapsulated documents, presentation states
    return None


class ImageCache:
    """Encoded images by key, least recently used dropped first beyond ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[Any, ...], data: bytes) -> None:
        if len(data) > self.budget:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.budget:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


@dataclass(frozen=True)
class Picture:
    """One image to make: which instance and frame (None: its representative frame), how."""

    instance: StoredInstance
    frame: int | None
    media_type: str
    viewport: Viewport | None
    quality: int
    thumbnail: bool

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            self.instance.sha256,
            self.frame,
            self.media_type,
            self.viewport,
            self.quality,
            self.thumbnail,
        )

    @property
    def etag(self) -> str:
        # With the node's version: a newer node may draw the same instance differently.
        tagged = (__version__, *self.key)
        return '"' + hashlib.sha256(repr(tagged).encode()).hexdigest()[:32] + '"'


def make_picture(picture: Picture) -> bytes:
    size = picture.viewport or Viewport(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    label = document_label(picture.instance.sop_class_uid)
    header = read_header(picture.instance.path) if label is None else None
    if header is not None and "Rows" not in header:
        label = "DOC"  # an image class without pixel data
    if header is None or label is not None:
        return encode(icon(label or "DOC", size.width, size.height), picture.media_type, 90)
    number = picture.frame or representative_frame(header)
    image = frame_image(picture.instance.path, header, number)
    if picture.thumbnail:
        image = imaging_area(image, header)
    return encode(fit(image, picture.viewport), picture.media_type, picture.quality)


def make_router(node: Node, read: Callable[[Request], None]) -> APIRouter:
    router = APIRouter(tags=["WADO-RS"], dependencies=[Depends(read)])
    cache = ImageCache(node.settings.thumbnail_cache_mb * 1024 * 1024)
    image_doc: dict[int | str, dict[str, Any]] = {
        200: {"description": "an image", "content": {"image/jpeg": {}, "image/png": {}}},
        304: {"description": "not modified (If-None-Match)"},
        404: {"description": "not found"},
        406: {"description": "no acceptable media type"},
    }

    def instances(study: str, series: str | None, instance: str | None) -> list[StoredInstance]:
        with node.sessions() as session:
            found = find_instances(session, node.store, study, series, instance)
        if not found:
            raise WebError(404, "no such study, series or instance")
        return found

    def answer(request: Request, picture: Picture) -> Response:
        headers = {"ETag": picture.etag, "Cache-Control": "private, no-cache"}
        asked = request.headers.get("if-none-match", "")
        if picture.etag in (tag.strip().removeprefix("W/") for tag in asked.split(",")):
            return Response(status_code=304, headers=headers)
        data = cache.get(picture.key)
        if data is None:
            data = make_picture(picture)
            cache.put(picture.key, data)
        return Response(data, media_type=picture.media_type, headers=headers)

    def thumbnail(
        request: Request,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        frame: int | None = None,
    ) -> Response:
        media_type = _single(accepted(request), "thumbnails")
        viewport = parse_viewport(request.query_params.get("viewport"), THUMBNAIL_LARGEST)
        quality = parse_quality(request.query_params.get("quality"), THUMBNAIL_QUALITY)
        # A thumbnail shows the imaging area: a source region of the full frame means nothing.
        size = (
            Viewport(viewport.width, viewport.height)
            if viewport
            else Viewport(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        )
        chosen = _representative(instances(study, series, instance))
        return answer(request, Picture(chosen, frame, media_type, size, quality, True))

    @router.get("/studies/{study}/thumbnail", responses=image_doc, response_class=Response)
    def study_thumbnail(request: Request, study: str) -> Response:
        return thumbnail(request, study)

    @router.get(
        "/studies/{study}/series/{series}/thumbnail", responses=image_doc, response_class=Response
    )
    def series_thumbnail(request: Request, study: str, series: str) -> Response:
        return thumbnail(request, study, series)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
        responses=image_doc,
        response_class=Response,
    )
    def instance_thumbnail(request: Request, study: str, series: str, instance: str) -> Response:
        return thumbnail(request, study, series, instance)

    @router.get(
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
        responses=image_doc,
        response_class=Response,
    )
    def frame_thumbnail(
        request: Request,
        study: str,
        series: str,
        instance: str,
        frames: Annotated[str, Path(pattern=_FRAMES)],
    ) -> Response:
        """The first frame of the list."""
        return thumbnail(request, study, series, instance, int(frames.split(",")[0]))

    def rendered(request: Request, study: str, series: str | None = None) -> Response:
        media_type, multipart = _rendered_choice(accepted(request))
        viewport = parse_viewport(request.query_params.get("viewport"), RENDERED_LARGEST)
        quality = parse_quality(request.query_params.get("quality"), RENDERED_QUALITY)
        images = [
            item
            for item in instances(study, series, None)
            if document_label(item.sop_class_uid) is None
        ]
        if not images:
            raise WebError(406, "this holds no images; the node renders images only")
        pictures = [Picture(item, None, media_type, viewport, quality, False) for item in images]
        if not multipart:
            return answer(request, pictures[0])
        return _multipart(request, pictures, cache)

    multipart_doc = {
        **image_doc,
        200: {
            "description": "one image, or one part an image instance",
            "content": {"image/jpeg": {}, "image/png": {}, "multipart/related": {}},
        },
    }

    @router.get("/studies/{study}/rendered", responses=multipart_doc, response_class=Response)
    def study_rendered(request: Request, study: str) -> Response:
        return rendered(request, study)

    @router.get(
        "/studies/{study}/series/{series}/rendered",
        responses=multipart_doc,
        response_class=Response,
    )
    def series_rendered(request: Request, study: str, series: str) -> Response:
        return rendered(request, study, series)

    return router


def _representative(instances: list[StoredInstance]) -> StoredInstance:
    """The first image instance (in the order they arrived), else the first of any kind."""
    return next(
        (item for item in instances if document_label(item.sop_class_uid) is None), instances[0]
    )


def _matches(accept: Accepted, media_type: str) -> bool:
    return accept.media_type in ("*/*", "image/*", media_type)


def _single(accepts: list[Accepted], what: str) -> str:
    for accept in accepts:
        if not accept.multipart:
            for media_type in RENDERED_TYPES:
                if _matches(accept, media_type):
                    return media_type
    raise WebError(406, f"{what} are image/jpeg or image/png")


def _rendered_choice(accepts: list[Accepted]) -> tuple[str, bool]:
    for accept in accepts:
        for media_type in RENDERED_TYPES:
            if _matches(accept, media_type):
                return media_type, accept.multipart
    raise WebError(
        406,
        "rendered studies and series are image/jpeg or image/png, as one image or as "
        'multipart/related; type="image/jpeg" (one part an image instance); '
        "the node produces no video, text or PDF renderings",
    )


def _multipart(request: Request, pictures: list[Picture], cache: ImageCache) -> Response:
    """One part an instance, rendered while sending; an instance that cannot be decoded is
    left out and logged (the status line has gone by then)."""
    boundary = uuid.uuid4().hex
    media_type = pictures[0].media_type
    base = str(request.base_url).rstrip("/") + request.url.path.rsplit("/studies/", 1)[0]

    def body() -> Iterator[bytes]:
        for picture in pictures:
            item = picture.instance
            data = cache.get(picture.key)
            if data is None:
                try:
                    data = make_picture(picture)
                except WebError as exc:
                    logger.warning(
                        "rendered study/series: an instance left out",
                        extra={"sop_instance_uid": item.sop_instance_uid, "reason": exc.message},
                    )
                    continue
                cache.put(picture.key, data)
            location = (
                f"{base}/studies/{item.study_instance_uid}/series/{item.series_instance_uid}"
                f"/instances/{item.sop_instance_uid}"
            )
            yield (
                f"--{boundary}\r\nContent-Type: {media_type}\r\n"
                f"Content-Location: {location}\r\n\r\n"
            ).encode("ascii")
            yield data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode("ascii")

    return StreamingResponse(
        body(), media_type=f'multipart/related; type="{media_type}"; boundary={boundary}'
    )
