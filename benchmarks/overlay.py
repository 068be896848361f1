"""Overlay benchmark: seconds to draw and encode the overlay SC of a 60-frame 480×640 PLAX clip.

The phantom's PLAX clip (heart rate 80/min, 40 frames/s, two beats: 60 frames) with the
truth's calipers as findings (tests/phantom_findings.py), so every caliper, the legend and the
ED/ES tags are drawn. Steps timed apart: the plan from the report, drawing (legend placement,
calipers on every frame), and the SC with JPEG Baseline (the node's default) and with
uncompressed pixels; and decoding the source clip, which the node does again for the overlay.
Writes benchmarks/results/overlay.json.

`--png DIR` also writes the README's pictures: DIR/overlay-plax.png (the representative frame
of the PLAX overlay) and DIR/overlay-mv_pw.png (the mitral PW Doppler overlay).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from ai.decode import load_clip
from ai.phantom.study import generate_study
from echo_node.results import DeviceInfo, build_overlay_sc, plan_for, render_for
from echo_node.results.report import Report, SourceClip, build_report
from tests.phantom_findings import doppler_result, plax_result, truth

RESULTS = Path(__file__).resolve().parent / "results" / "overlay.json"
NODE = DeviceInfo(ae_title="ECHONODE", device_uid="1.2.826.0.1.3680043.8.498.1")
REPEATS = 5


def _median_seconds(call: Callable[[], Any]) -> float:
    call()  # warm-up: fonts, codecs
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _study(folder: Path) -> Report:
    generate_study(folder, 1, heart_rate_bpm=80.0, rows=480, columns=640, frame_rate=40.0)
    flags = {"LVIDs": ("partial_beats",)}
    results = {
        "plax": plax_result(truth(folder, "plax"), flags),
        "mv_pw": doppler_result(truth(folder, "mv_pw"), {"MV_E": ("flow_identified_by_shape",)}),
    }
    return build_report(
        [
            SourceClip(pydicom.dcmread(folder / f"{name}.dcm", stop_before_pixels=True), result)
            for name, result in results.items()
        ]
    )


def _frames(path: Path) -> tuple[Any, np.ndarray]:  # type: ignore[type-arg]
    clip = load_clip(path)
    return clip, np.stack([clip.frames[i] for i in range(len(clip))])


def main(png: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        report = _study(folder)
        header = pydicom.dcmread(folder / "plax.dcm", stop_before_pixels=True)
        clip, frames = _frames(folder / "plax.dcm")
        plan = plan_for(header, report, frame_time_ms=clip.frame_time_ms)
        rendering = render_for(header, frames, plan)
        figures: dict[str, Any] = {
            "frames": int(frames.shape[0]),
            "rows_columns": [int(frames.shape[1]), int(frames.shape[2])],
            "sc_columns": rendering.placement.columns,
            # The node decodes the clip again for its overlay (outputs.OverlaySeries).
            "decode_s": _median_seconds(lambda: _frames(folder / "plax.dcm")),
            "plan_s": _median_seconds(
                lambda: plan_for(header, report, frame_time_ms=clip.frame_time_ms)
            ),
            "draw_s": _median_seconds(lambda: render_for(header, frames, plan)),
            "sc_jpeg_s": _median_seconds(lambda: build_overlay_sc(header, rendering, node=NODE)),
            "sc_uncompressed_s": _median_seconds(
                lambda: build_overlay_sc(
                    header, rendering, node=NODE, transfer_syntax=ExplicitVRLittleEndian
                )
            ),
        }
        figures["total_jpeg_s"] = sum(
            figures[step] for step in ("decode_s", "plan_s", "draw_s", "sc_jpeg_s")
        )
        if png is not None:
            _pictures(folder, report, rendering, png)
    document = {"machine": {"cpu": platform.machine()}, "figures": figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return document


def _pictures(folder: Path, report: Report, plax: Any, out: Path) -> None:
    """The frames a PACS shows first: the representative frame, decoded from the JPEG SC."""
    out.mkdir(parents=True, exist_ok=True)
    header = pydicom.dcmread(folder / "mv_pw.dcm", stop_before_pixels=True)
    _, frames = _frames(folder / "mv_pw.dcm")
    doppler = render_for(header, frames, plan_for(header, report))
    for name, rendering, source in (("plax", plax, "plax"), ("mv_pw", doppler, "mv_pw")):
        source_header = pydicom.dcmread(folder / f"{source}.dcm", stop_before_pixels=True)
        sc = build_overlay_sc(source_header, rendering, node=NODE, transfer_syntax=JPEGBaseline8Bit)
        path = folder / f"{name}-sc.dcm"
        sc.save_as(path, enforce_file_format=True)
        back = pydicom.dcmread(path)
        pixels = back.pixel_array
        frame = int(back.get("RepresentativeFrameNumber", 1)) - 1
        image = pixels[frame] if pixels.ndim == 4 else pixels
        Image.fromarray(image.astype(np.uint8), "RGB").save(
            out / f"overlay-{name}.png", optimize=True
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--png", type=Path, help="also write the README's overlay pictures here")
    main(parser.parse_args().png)
