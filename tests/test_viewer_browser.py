"""OHIF in a real browser: Debian's chromium, driven by Playwright, against `echo-node serve`.

The node runs on loopback ports with processing on and its viewer at /viewer/; dcmtk's storescu
sends it the demo's phantom study (`echo-node phantom --seed 1`, as `make run` does), the node
processes it (echo SR, secondary-capture overlays, TID 1500 copy, PDF), and the browser then
signs in with a read token, finds the study in OHIF's study list, opens it and checks what a
user would look at: the clip and the overlay drawn in the viewport (pixels, not DOM), every
thumbnail of the study browser fetched from the node's /thumbnail resources and not blank, the
three documents listed by their series descriptions, and the TID 1500 copy's measurements
loaded into OHIF's measurement tools and listed by name and value in its Measurements panel.

`UPDATE_SCREENSHOTS=1` copies the screenshots into docs/images for the README.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Locator, Page, Response, sync_playwright
from pydicom import dcmread

from ai.phantom.study import generate_study
from echo_node.results import codes
from echo_node.results.series import (
    MEASUREMENTS,
    measurements_series,
    pdf_series,
    report_series,
)
from echo_node.results.tid1500 import TOOL_PREFIX
from tests.conftest import REPO, NodeProcess, free_port
from tests.dicom_files import storescu

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright downloads no browser
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWER_DIR = REPO / "ohif"
PROCESSED_S = 240  # quiet period + processing of the phantom (28-111 s seen on a busy 2-core box)
UI_S = 90  # the longest any one step in the browser may take (OHIF is 20+ MB of scripts)
DOCS = REPO / "docs" / "images"
DOCUMENTS = '[data-cy="studyBrowser-panel"] [data-cy="study-browser-thumbnail-no-image"]'


@dataclass(frozen=True)
class ToolMeasurement:
    """A measurement group of the node's TID 1500 copy that OHIF loads into a tool."""

    label: str  # the group's first Comment: the name OHIF lists the measurement by
    site: str  # the Finding Site's meaning, OHIF's second detail line
    value: float  # the group's first NUM
    unit: str  # UCUM


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def _lit(png: bytes, centre: bool = False) -> float:
    """Fraction of pixels clearly brighter than OHIF's near-black backgrounds. ``centre``
    looks at the middle half only, away from the viewport's overlay text."""
    image = _pixels(png)
    if centre:
        height, width = image.shape[:2]
        image = image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    return float((image.mean(axis=2) > 50).mean())


def _coloured(png: bytes) -> float:
    """Fraction of saturated pixels: the overlays' calipers and labels; the clips are grey."""
    image = _pixels(png)
    return float(((image.max(axis=2) - image.min(axis=2)) > 80).mean())


def _until(check: Callable[[], bool], what: str, seconds: float = UI_S) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.5)


@contextmanager
def _browser(profile: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        # OHIF's first-visit tour would cover the viewport; a returning user has seen it.
        context.add_init_script(
            "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))"
        )
        try:
            yield context
        finally:
            context.close()


def _processed_node(
    tmp_path: Path, node_factory: type[NodeProcess]
) -> tuple[NodeProcess, int, Path]:
    """The node serving HTTP with the demo's study stored and processed; its DICOMweb port
    and one of the study's files."""
    paths = generate_study(tmp_path / "phantom", 1)
    http_port = free_port()
    node = node_factory(
        tmp_path / "data",
        free_port(),
        {
            "process_enabled": "true",
            "http_enabled": "true",
            "http_port": str(http_port),
            "viewer_dir": str(VIEWER_DIR),
            "stable_after_s": "2",
            "sweep_interval_s": "1",
            "torch_threads": "1",
        },
    ).start()
    sent = storescu(node.port, paths)
    assert sorted(sent.acknowledged) == sorted(paths), sent.output[-2000:]

    def done() -> bool:
        jobs = json.loads(node.cli("jobs", "--json").stdout)
        return bool(jobs) and jobs[0]["state"] == "done"

    _until(done, f"the study processed; node log:\n{node.log()[-3000:]}", PROCESSED_S)
    return node, http_port, paths[0]


def _thumbnails_ok(images: Locator) -> bool:
    """Every thumbnail image loaded and showing a picture (element screenshots: what the
    user sees, after OHIF's own scaling)."""
    count = images.count()
    return count > 0 and all(
        images.nth(index).evaluate("image => image.complete && image.naturalWidth > 0")
        and _lit(images.nth(index).screenshot()) > 0.05
        for index in range(count)
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ohif_opens_the_processed_study(tmp_path: Path, node_factory: type[NodeProcess]) -> None:
    if not (VIEWER_DIR / ".echo-node-ohif").exists() or not CHROMIUM.exists():
        raise RuntimeError("the viewer or chromium is missing: run `make test`, which sets both up")
    timings: dict[str, float] = {}
    started = time.monotonic()
    node, http_port, clip = _processed_node(tmp_path, node_factory)
    timings["node started, study stored and processed"] = time.monotonic() - started
    token = node.cli("tokens", "add", "--scope", "read", "--name", "browser").stdout.split()[-1]
    study = dcmread(clip, stop_before_pixels=True)
    base = f"http://127.0.0.1:{http_port}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    failures: list[str] = []
    thumbnails: list[int] = []

    def watch(response: Response) -> None:
        if "/dicom-web/" in response.url:
            if response.status >= 400:
                failures.append(f"{response.status} {response.url}")
            if response.url.split("?")[0].endswith("/thumbnail"):
                thumbnails.append(response.status)

    with _browser(tmp_path / "chromium-profile") as context:
        page = context.new_page()
        page.on("response", watch)
        step = time.monotonic()
        page.goto(f"{base}/viewer/")
        assert "/viewer/login" in page.url  # nothing without a token
        page.fill("#token", token)
        page.click("button[type=submit]")
        row = page.locator("tr", has_text=study.AccessionNumber)
        row.wait_for(timeout=UI_S * 1000)
        timings["login to study list"] = time.monotonic() - step

        # The study list's preview: one thumbnail per series with images, from the node.
        row.click()
        preview = page.locator('[data-cy="study-browser-thumbnail"] img')
        _until(lambda: _thumbnails_ok(preview), "the study list's series thumbnails")
        page.screenshot(path=shots / "viewer-study-list.png")

        step = time.monotonic()
        page.get_by_role("button", name="Basic Viewer").click()
        viewport = page.locator('[data-cy="viewport-pane"]').first
        viewport.wait_for(timeout=UI_S * 1000)
        _until(lambda: _lit(viewport.screenshot(), centre=True) > 0.1, "the clip drawn")
        timings["study opened, first clip drawn"] = time.monotonic() - step

        step = time.monotonic()
        browser_panel = page.locator('[data-cy="studyBrowser-panel"]')
        images = browser_panel.locator('[data-cy="study-browser-thumbnail"] img')
        _until(lambda: _thumbnails_ok(images), "every study-browser thumbnail non-blank")
        descriptions = browser_panel.locator('[data-cy="study-browser-thumbnail"]')
        overlay = descriptions.filter(has_text="Echo Node overlays")
        assert overlay.count() == 1, descriptions.all_inner_texts()
        timings["study browser thumbnails"] = time.monotonic() - step

        step = time.monotonic()
        overlay.dblclick()
        _until(
            lambda: (
                _coloured(viewport.screenshot()) > 0.001
                and _lit(viewport.screenshot(), centre=True) > 0.05
            ),
            "the secondary capture (coloured calipers and labels) drawn in the viewport",
        )
        timings["secondary capture drawn"] = time.monotonic() - step
        page.screenshot(path=shots / "viewer-overlay.png")
        _check_page(page, images.count(), thumbnails, failures)

        step = time.monotonic()
        loaded = _tool_measurements(tmp_path / "data")
        assert any(m.unit == "cm/s" for m in loaded), loaded  # the demo's Doppler peaks
        _check_measurements(page, loaded)
        timings["TID 1500 measurements loaded and listed"] = time.monotonic() - step
        page.screenshot(path=shots / "viewer-measurements.png")
        assert not failures, failures

    timings["total"] = time.monotonic() - started
    print("; ".join(f"{what}: {seconds:.1f} s" for what, seconds in timings.items()))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for shot in shots.iterdir():
            shutil.copyfile(shot, DOCS / shot.name)
    assert node.stop() == 0


def _check_page(page: Page, shown: int, thumbnails: list[int], failures: list[str]) -> None:
    assert shown >= 3, "PLAX, A4C, the Doppler clips and the overlays: 3 or more image sets"
    # Each of them came from the node's /thumbnail resources, none failed, and nothing the
    # page asked of DICOMweb failed either.
    assert thumbnails.count(200) >= shown and not failures, (thumbnails, failures)
    # The run's three documents, each listed once by its series (OHIF draws no thumbnail for
    # a document): the echo SR, the TID 1500 copy and the PDF.
    now = datetime.now()  # the descriptions name the run, not its time
    expected = sorted(
        (series.number, modality, series.description)
        for modality, series in (
            ("SR", report_series(1, now)),
            ("SR", measurements_series(1, now)),
            ("DOC", pdf_series(1, now)),
        )
    )
    documents = page.locator(DOCUMENTS)
    listed = sorted(
        (
            int(re.findall(r"S:\s*(\d+)", document.inner_text())[0]),
            document.locator('[data-cy="series-modality-label"]').inner_text().strip(),
            document.locator('[data-cy="series-description-label"]').inner_text().strip(),
        )
        for document in documents.all()
    )
    assert listed == expected, documents.all_inner_texts()


def _tool_measurements(data_dir: Path) -> list[ToolMeasurement]:
    """What OHIF lists once it has loaded the node's TID 1500 copy into its tools: the groups
    whose tracking identifier names a Cornerstone tool (E/A's is drawn only; docs/VIEWERS.md)."""
    description = measurements_series(1, datetime.now()).description
    (path,) = (
        path
        for path in (data_dir / "instances").rglob("*.dcm")
        if dcmread(path, stop_before_pixels=True).get("SeriesDescription") == description
    )
    document = hd.sr.srread(path)
    assert isinstance(document.content, hd.sr.MeasurementReport)
    found = []
    for group in document.content.get_image_measurement_groups():
        if not (group.tracking_identifier or "").startswith(TOOL_PREFIX):
            continue
        comments = [
            item.TextValue
            for item in group[0].ContentSequence
            if item.ValueType == "TEXT"
            and item.ConceptNameCodeSequence[0].CodeValue == codes.COMMENT.value
        ]
        first = group.get_measurements()[0]
        found.append(
            ToolMeasurement(
                comments[0],
                group.finding_sites[0].value.meaning,
                float(first.value),
                first.unit.value,
            )
        )
    assert found, "the TID 1500 copy has no measurement OHIF loads into a tool"
    return found


def _check_measurements(page: Page, expected: list[ToolMeasurement]) -> None:
    """Open the TID 1500 copy, accept OHIF's offer to track its measurements (3.13's SR badge
    has no LOAD button: the offer is the viewport's notification) and read the Measurements
    panel: one row per tool measurement, titled by its label, with its finding site and a
    value. A velocity's value is the SR's until the Probe tool recalculates it from the
    spectral region's calibration on the drawn beat; either is within 10 % of the node's."""
    page.locator(DOCUMENTS).filter(has_text=MEASUREMENTS).dblclick()
    badge = page.locator('[data-cy^="ModalityLoadBadge-"]')
    _until(lambda: "SR" in badge.all_inner_texts(), "the SR viewport's badge")
    page.locator('[data-cy="yes-hydrate-btn"]').click(timeout=UI_S * 1000)
    panel = page.locator('[data-cy="trackedMeasurements-panel"]')
    if not panel.is_visible():
        page.locator('[data-cy="trackedMeasurements-btn"]').click()
    rows = panel.locator('[data-cy^="measurement-table-row-"]')
    _until(lambda: rows.count() >= len(expected), f"{len(expected)} measurement rows")
    titles = rows.locator('[data-cy="data-row-title"]').all_inner_texts()
    assert sorted(titles) == sorted(m.label for m in expected), titles
    by_label = {m.label: m for m in expected}
    for row in rows.all():
        measurement = by_label[row.locator('[data-cy="data-row-title"]').inner_text()]
        details = row.locator('[data-cy="data-row-details-primary"]').inner_text()
        assert measurement.site in details, (measurement, details)
        numbers = [abs(float(n)) for n in re.findall(r"-?\d+(?:\.\d+)?", details)]
        assert numbers, (measurement, details)
        if measurement.unit == "cm/s":
            close = [n for n in numbers if abs(n - measurement.value) <= 0.1 * measurement.value]
            assert close, (measurement, details)
