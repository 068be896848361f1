"""The README's example SR: a phantom study's report rendered by dcmtk's dsr2html (as any SR
viewer shows it) into docs/images/sr-dsr2html.html, and with Chromium headless into a PNG.

    python -m tests.sr_example docs/images        (make docs-images)

The Doppler values are the classical engine's on the phantom's spectral clips; the PLAX values
are the phantom's truth measured at its keypoints, as a PLAX model would report them; the EF is
a stand-in model's (qualified: its training statistics are not published) and the RV basal
dimension an implausible one, to show a withheld value's sentence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image

from ai.analyze import analyze
from ai.findings import (
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)
from ai.phantom.study import generate_study
from echo_node.results import DeviceInfo, SourceClip, build_sr

NODE = DeviceInfo(ae_title="ECHONODE", device_uid="1.2.826.0.1.3680043.8.498.1")
PLAX_MODEL = Provenance("echonet-lvh-plax", "unpublished", sha256="3" * 64)
EF_MODEL = Provenance("echonet-dynamic-ef", "v1.0.0", sha256="7" * 64)
RV_MODEL = Provenance("echonet-measurements-rv_base", "main", sha256="b" * 64, published=False)


def _plax(phantom: Path, uid: str) -> ClipResult:
    """The phantom's IVSd, LVIDd, LVPWd at its first end-diastole and LVIDs at its first
    end-systole, with calipers between its keypoints (LVPW outer, LVPW/LVID, LVID/IVS, IVS/RV)."""
    truth: dict[str, Any] = json.loads((phantom / "plax.json").read_text())
    ed, es = truth["ed_frames"][0], truth["es_frames"][0]
    at_ed, at_es = truth["frames"][ed]["keypoints_px"], truth["frames"][es]["keypoints_px"]
    expected = truth["expected"]

    def finding(name: str, frame: int, ends: list[list[float]]) -> Finding:
        points = tuple((float(x), float(y)) for x, y in ends)
        return Finding(name, expected[name]["value"], "cm", PLAX_MODEL, (frame,), points)

    findings = (
        finding("IVSd", ed, [at_ed[3], at_ed[2]]),
        finding("LVIDd", ed, [at_ed[2], at_ed[1]]),
        finding("LVPWd", ed, [at_ed[1], at_ed[0]]),
        finding("LVIDs", es, [at_es[2], at_es[1]]),
    )
    return ClipResult(
        uid,
        ViewDecision(View.PLAX, "SeriesDescription", 1.0),
        (PipelineResult("plax", PipelineStatus.OK, findings),),
    )


def _a4c(uid: str) -> ClipResult:
    lvef = Finding(
        "LVEF",
        58.3,
        "%",
        EF_MODEL,
        (4, 24),
        flags=("normalisation_stand_in", "averaged_over_beats"),
    )
    rv = Finding("RVbase", 0.02, "cm", RV_MODEL, (4,), ((150.0, 90.0), (151.0, 90.0)),
                 flags=("outside_physiological_range",))  # fmt: skip
    return ClipResult(
        uid,
        ViewDecision(View.A4C, "SeriesDescription", 1.0),
        (
            PipelineResult("a4c", PipelineStatus.OK, (lvef,)),
            PipelineResult("measurements_2d_a4c", PipelineStatus.OK, (rv,)),
        ),
    )


def write(out_dir: Path) -> Path:
    """The example SR's HTML (and PNG, when Chromium is installed) in `out_dir`."""
    with tempfile.TemporaryDirectory() as scratch:
        phantom = Path(scratch) / "phantom"
        generate_study(phantom, 1, rows=480, columns=640, cycles=1, frame_rate=20.0)
        sources = []
        for name in ("plax", "a4c", "tr_cw", "mv_pw"):
            header = pydicom.dcmread(phantom / f"{name}.dcm", stop_before_pixels=True)
            header.PatientSize, header.PatientWeight = "1.72", "68"
            uid = header.SOPInstanceUID
            if name == "plax":
                result = _plax(phantom, uid)
            elif name == "a4c":
                result = _a4c(uid)
            else:
                result = analyze(phantom / f"{name}.dcm")
            sources.append(SourceClip(header, result))
        sr_path = Path(scratch) / "sr.dcm"
        build_sr(sources, node=NODE).save_as(sr_path, enforce_file_format=True)
        html = out_dir / "sr-dsr2html.html"
        # +Ra: every item inline (long texts such as the weights' sha256 otherwise go to an
        # annex at the end of the page), so the picture shows each value with all it carries.
        subprocess.run(["dsr2html", "+Ra", str(sr_path), str(html)], check=True)
    chromium = shutil.which("chromium")
    if chromium is not None:
        png = out_dir / "sr-dsr2html.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={png.resolve()}",
                "--window-size=1000,8000",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
        )
        _crop_to_content(png)
    return html


def _crop_to_content(png: Path, margin: int = 16) -> None:
    """Cut the screenshot's blank bottom off."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    rows = np.flatnonzero((np.asarray(rgb.convert("L")) < 250).any(axis=1))
    bottom = min(int(rows[-1]) + margin, rgb.height) if rows.size else rgb.height
    rgb.crop((0, 0, rgb.width, bottom)).save(png, optimize=True)


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")))
