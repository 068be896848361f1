"""PS3.18 thumbnails and rendered studies/series, read back with dicomweb-client and httpx from
real ultrasound files: which frame, which part of it, how big, which media types, caching."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import generate_uid

from echo_node.cli.importer import import_file
from echo_node.node import open_node
from echo_node.settings import load_settings
from echo_node.web import thumbnails
from echo_node.web.auth import add_token
from echo_node.web.thumbnails import ImageCache
from tests.conftest import free_port, us_file
from tests.test_web_large import _big_clip
from tests.test_web_support import WebNode, rss_growth, settings_env, web, web_process  # noqa: F401

CLIP = "examples_ybr_color.dcm"  # 30 frames JPEG YBR, one ultrasound region
STILL = "examples_rgb_color.dcm"  # one frame, native RGB, no region
PALETTE = "examples_palette.dcm"  # palette colour, two regions
REPORT = "test-SR.dcm"  # Comprehensive SR


def _copy(name: str, study: str, **changes: Any) -> Dataset:
    dataset = dcmread(us_file(name))
    dataset.StudyInstanceUID = study
    dataset.SeriesInstanceUID = changes.pop("series", generate_uid())
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    return dataset


def _image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def _expected(dataset: Dataset, frame: int, box: tuple[int, int] | None, crop: bool) -> np.ndarray:
    """The frame as the standard and the node's rules say it should look: decoded here with
    pydicom, cut to the regions' union (thumbnails), scaled to fit ``box`` keeping aspect."""
    pixels = dataset.pixel_array
    if dataset.PhotometricInterpretation == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
        pixels = (pixels // 257 if pixels.dtype != np.uint8 else pixels).astype(np.uint8)
    image = Image.fromarray(pixels[frame - 1] if pixels.ndim == 4 else pixels)
    if crop:
        regions = dataset.SequenceOfUltrasoundRegions
        image = image.crop(
            (
                min(r.RegionLocationMinX0 for r in regions),
                min(r.RegionLocationMinY0 for r in regions),
                min(image.width, max(r.RegionLocationMaxX1 for r in regions) + 1),
                min(image.height, max(r.RegionLocationMaxY1 for r in regions) + 1),
            )
        )
    if box is not None:
        scale = min(box[0] / image.width, box[1] / image.height)
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).mean())


@pytest.fixture
def client(web: WebNode) -> DICOMwebClient:  # noqa: F811
    return DICOMwebClient(web.url, headers=web.auth())


def _get(web: WebNode, path: str, **headers: str) -> httpx.Response:  # noqa: F811
    return httpx.get(f"{web.url}{path}", headers={**web.auth(web.read_token), **headers})


def test_clip_thumbnail_is_the_middle_frame_inside_the_regions(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
) -> None:
    study = generate_uid()
    clip = _copy(CLIP, study)
    chosen = _copy(CLIP, study, series=clip.SeriesInstanceUID, RepresentativeFrameNumber=5)
    client.store_instances([clip, chosen])
    series = f"/studies/{study}/series/{clip.SeriesInstanceUID}"

    answer = _get(web, f"{series}/instances/{clip.SOPInstanceUID}/thumbnail?viewport=96,96")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    got = _image(answer.content)
    assert max(got.shape[:2]) == 96  # fitted into the viewport, the aspect kept
    middle = _difference(got, _expected(clip, 15, (96, 96), crop=True))
    first = _difference(got, _expected(clip, 1, (96, 96), crop=True))
    assert middle < 6 and middle < first / 2, (middle, first)

    # Representative Frame Number wins over the middle; frames/{n}/thumbnail takes frame n.
    picked = _get(web, f"{series}/instances/{chosen.SOPInstanceUID}/thumbnail?viewport=96,96")
    assert _difference(_image(picked.content), _expected(chosen, 5, (96, 96), crop=True)) < 6
    listed = _get(web, f"{series}/instances/{clip.SOPInstanceUID}/frames/9,2/thumbnail")
    got = _image(listed.content)
    assert max(got.shape[:2]) == thumbnails.THUMBNAIL_SIDE
    assert _difference(got, _expected(clip, 9, (128, 128), crop=True)) < 6

    # The series is shown by its first image instance.
    whole = _get(web, f"{series}/thumbnail?viewport=96,96")
    assert _difference(_image(whole.content), _image(answer.content)) < 1


def test_palette_colour_and_documents(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
) -> None:
    study = generate_uid()
    report = _copy(REPORT, study)
    palette = _copy(PALETTE, study)
    client.store_instances([report, palette])

    # Palette colour comes out in its colours, cut to its two regions.
    answer = _get(
        web, f"/studies/{study}/series/{palette.SeriesInstanceUID}/thumbnail?viewport=200,200"
    )
    got = _image(answer.content)
    through_lut = _difference(got, _expected(palette, 1, (200, 200), crop=True))
    palette.PhotometricInterpretation = "MONOCHROME2"  # the same pixels read as indices
    as_indices = _difference(got, _expected(palette, 1, (200, 200), crop=True))
    assert through_lut < 2 and as_indices > 3 * through_lut, (through_lut, as_indices)

    # An SR is shown as an icon; a study is shown by its first image, not its first instance.
    icon = _get(
        web, f"/studies/{study}/series/{report.SeriesInstanceUID}/thumbnail", accept="image/png"
    )
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
    drawn = _image(icon.content)
    assert drawn.shape[:2] == (128, 128) and drawn.std() > 30
    study_answer = _get(web, f"/studies/{study}/thumbnail?viewport=200,200")
    assert _difference(_image(study_answer.content), _image(answer.content)) < 1


def test_rendered_series_and_study(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
) -> None:
    study = generate_uid()
    clip, still, report = _copy(CLIP, study), _copy(STILL, study), _copy(REPORT, study)
    client.store_instances([clip, still, report])

    # One image for a single-part Accept: the series' representative frame, full size.
    data = client.retrieve_series_rendered(
        study, clip.SeriesInstanceUID, media_types=("image/jpeg",)
    )
    assert _difference(_image(data), _expected(clip, 15, None, crop=False)) < 6
    scaled = client.retrieve_series_rendered(
        study,
        clip.SeriesInstanceUID,
        media_types=("image/png",),
        params={"viewport": "160,160"},
    )
    assert Image.open(io.BytesIO(scaled)).format == "PNG"
    assert _difference(_image(scaled), _expected(clip, 15, (160, 160), crop=False)) < 3

    # multipart/related: one part an image instance, the SR left out.
    answer = _get(web, f"/studies/{study}/rendered", accept='multipart/related; type="image/jpeg"')
    assert answer.status_code == 200
    parts = _parts(answer)
    assert [location.rsplit("/", 1)[1] for location, _ in parts] == [
        clip.SOPInstanceUID,
        still.SOPInstanceUID,
    ]
    assert _difference(_image(parts[1][1]), _expected(still, 1, None, crop=False)) < 6

    # Media types the node does not produce, and parameters it cannot read.
    for accept in ("video/mp4", "text/html", "application/pdf", "image/gif"):
        assert _get(web, f"/studies/{study}/rendered", accept=accept).status_code == 406
    assert (
        _get(web, f"/studies/{study}/thumbnail", accept='multipart/related; type="image/jpeg"')
    ).status_code == 406
    only_report = f"/studies/{study}/series/{report.SeriesInstanceUID}/rendered"
    assert _get(web, only_report).status_code == 406
    for query in ("viewport=0,10", "viewport=abc", "viewport=10", "quality=0", "quality=101"):
        assert _get(web, f"/studies/{study}/thumbnail?{query}").status_code == 400, query
    assert _get(web, f"/studies/{generate_uid()}/thumbnail").status_code == 404
    assert httpx.get(f"{web.url}/studies/{study}/thumbnail").status_code == 401

    # quality is JPEG quality.
    rough = _get(web, f"/studies/{study}/rendered?quality=5").content
    fine = _get(web, f"/studies/{study}/rendered?quality=95").content
    assert len(rough) * 2 < len(fine)


def _parts(answer: httpx.Response) -> list[tuple[str, bytes]]:
    boundary = answer.headers["content-type"].split("boundary=")[1].encode()
    parts = []
    for chunk in answer.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        fields = dict(
            line.split(": ", 1) for line in head.decode().strip().splitlines() if ": " in line
        )
        parts.append((fields["Content-Location"], body.removesuffix(b"\r\n")))
    return parts


def test_cached_by_sha256_and_revalidated(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[int] = []
    real = thumbnails.frame_image
    monkeypatch.setattr(
        thumbnails, "frame_image", lambda *args: decoded.append(args[2]) or real(*args)
    )
    study = generate_uid()
    still = _copy(STILL, study)
    client.store_instances([still])
    path = f"/studies/{study}/series/{still.SeriesInstanceUID}/instances/{still.SOPInstanceUID}"

    first = _get(web, f"{path}/thumbnail")
    again = _get(web, f"{path}/thumbnail")
    assert first.content == again.content and decoded == [1]  # decoded once
    tag = first.headers["etag"]
    unchanged = _get(web, f"{path}/thumbnail", **{"if-none-match": tag})
    assert unchanged.status_code == 304 and not unchanged.content

    # New bytes under the same SOP Instance UID: a new sha256, so a new thumbnail.
    still.PixelData = (255 - still.pixel_array).astype(np.uint8).tobytes()
    client.store_instances([still])
    changed = _get(web, f"{path}/thumbnail", **{"if-none-match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert decoded == [1, 1]
    assert _difference(_image(changed.content), 255 - _image(first.content)) < 6


def test_image_cache_keeps_to_its_budget() -> None:
    cache = ImageCache(budget=100)
    cache.put(("a",), b"x" * 40)
    cache.put(("b",), b"x" * 40)
    assert cache.get(("a",)) is not None  # now the most recently used
    cache.put(("c",), b"x" * 40)  # over budget: the least recently used (b) goes
    assert cache.get(("b",)) is None
    assert cache.get(("a",)) is not None and cache.get(("c",)) is not None
    cache.put(("d",), b"x" * 101)  # larger than the whole budget: not kept
    assert cache.get(("d",)) is None
    assert ImageCache(budget=0).get(("a",)) is None


def test_document_labels_follow_the_sop_class() -> None:
    assert thumbnails.document_label("1.2.840.10008.5.1.4.1.1.88.33") == "SR"
    assert thumbnails.document_label("1.2.840.10008.5.1.4.1.1.104.1") == "PDF"
    assert thumbnails.document_label("1.2.840.10008.5.1.4.1.1.3.1") is None


@pytest.mark.slow
def test_thumbnail_of_a_300_mb_clip_decodes_one_frame(tmp_path: Path) -> None:
    """A 300 MB native clip: its thumbnails and renderings cost the server about one frame."""
    clip = tmp_path / "clip.dcm"
    sop, study, frames = _big_clip(clip)
    header = dcmread(clip, stop_before_pixels=True)
    port = free_port()
    env = settings_env(tmp_path / "data", port)
    node = open_node(load_settings(environ=env))
    _, token = add_token(node.sessions, "read", "large")
    assert import_file(node.ingestor, clip).acknowledged
    node.engine.dispose()
    with web_process(env) as process:
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}/dicom-web/studies/{study}"
        series = f"{base}/series/{header.SeriesInstanceUID}"
        assert httpx.get(f"{base}/thumbnail", headers=headers, timeout=60).status_code == 200
        started = time.monotonic()
        with rss_growth(process.pid) as growth:
            answers = [
                httpx.get(url, headers=headers, timeout=60)
                for url in (
                    f"{series}/instances/{sop}/thumbnail?viewport=256,256",
                    f"{series}/instances/{sop}/frames/{frames}/thumbnail",
                    f"{series}/thumbnail?viewport=64,64&quality=50",
                    f"{series}/rendered",
                    f"{base}/rendered?viewport=100,100",
                )
            ]
        elapsed = time.monotonic() - started
    assert [answer.status_code for answer in answers] == [200] * 5
    frame_kb = header.Rows * header.Columns * 3 // 1024
    print(
        f"300 MB clip: RSS +{growth[0]} kB, 5 renderings ({frame_kb} kB a frame), {elapsed:.2f} s"
    )
    assert growth[0] < 20 * 1024, f"RSS grew by {growth[0]} kB rendering frames of a 300 MB clip"
