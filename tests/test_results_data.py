"""Inputs shared by the result-object tests: a real US header, hand-made ClipResults, dciodvfy."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ai.findings import (
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)
from echo_node.results import DeviceInfo
from tests.conftest import us_file

SOURCE_NAME = "examples_ybr_color.dcm"  # SonoSite multi-frame US (30 frames, 320x240, a region)
NODE = DeviceInfo(ae_title="ECHONODE", device_uid="1.2.826.0.1.3680043.8.498.1")
CLASSICAL = Provenance("classical", "0.3")
MODEL = Provenance("echonet-dynamic", "1.0", sha256="ab" * 32)


def source_dataset() -> Dataset:
    return pydicom.dcmread(us_file(SOURCE_NAME))


def source_header() -> Dataset:
    return pydicom.dcmread(us_file(SOURCE_NAME), stop_before_pixels=True)


def sibling(header: Dataset) -> Dataset:
    """Another instance of the same study and series (a second clip)."""
    other = copy.deepcopy(header)
    other.SOPInstanceUID = generate_uid()
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    return other


def plax_result(uid: str) -> ClipResult:
    # Calipers lie right of and above the legend, which is drawn bottom-left on every frame.
    return ClipResult(
        uid,
        ViewDecision(View.PLAX, "test", 1.0),
        (
            PipelineResult(
                "plax",
                PipelineStatus.OK,
                (
                    Finding("IVSd", 1.05, "cm", CLASSICAL, (3,), ((240.0, 30.0), (242.0, 50.5))),
                    Finding("LVIDd", 4.81, "cm", CLASSICAL, (3,), ((250.0, 52.0), (254.0, 120.0))),
                    Finding("LVPWd", 0.98, "cm", CLASSICAL, (3,), ((270.0, 100.0), (271.0, 125.0))),
                    Finding("LVIDs", 3.2, "cm", CLASSICAL, (12,), ((290.0, 40.0), (291.0, 110.0))),
                ),
            ),
        ),
        frame_count=30,
        frame_time_ms=33.333,
    )


def a4c_result(uid: str, *, installed: bool) -> ClipResult:
    if not installed:
        pipeline = PipelineResult(
            "a4c",
            PipelineStatus.MODEL_NOT_INSTALLED,
            message="model echonet-dynamic is not installed; run `echo-node models fetch`",
        )
    else:
        contour = ((150.0, 60.0), (180.0, 90.0), (170.0, 150.0), (140.0, 150.0), (130.0, 90.0))
        lvef = Finding("LVEF", 57.5, "%", MODEL, (2, 14), contour)
        pipeline = PipelineResult("a4c", PipelineStatus.OK, (lvef,))
    return ClipResult(uid, ViewDecision(View.A4C, "ViewCodeSequence", 1.0), (pipeline,))


def doppler_result(uid: str, mode: str | None) -> ClipResult:
    return ClipResult(
        uid,
        ViewDecision(View.DOPPLER, "region:spectral", 1.0, doppler_mode=mode),
        (
            PipelineResult(
                "doppler",
                PipelineStatus.OK,
                (
                    Finding("TR_Vmax", 2.61, "m/s", CLASSICAL, (0,), ((160.0, 200.0),)),
                    Finding("MV_E", 82.0, "cm/s", CLASSICAL, (0,), ((60.0, 150.0),)),
                    Finding("MV_A", 61.0, "cm/s", CLASSICAL, (0,), ((80.0, 160.0),)),
                    Finding("MV_E_A", 82.0 / 61.0, "1", CLASSICAL, (0,)),
                ),
            ),
        ),
    )


def unknown_result(uid: str) -> ClipResult:
    return ClipResult(uid, ViewDecision(View.UNKNOWN, "echoprime", 0.2, reason="low confidence"))


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) reported by dicom3tools' dciodvfy for a file."""
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    # A file dciodvfy cannot read at all also has no "Error" lines; demand it named the IOD.
    assert any(line.strip() and not line.startswith(("Error", "Warning")) for line in lines), lines
    return errors, warnings


def dsrdump(path: Path) -> str:
    """dsrdump's text of an SR, with codes, long names and UIDs; no warning allowed."""
    proc = subprocess.run(
        ["dsrdump", "+Pc", "+Pl", "+Pu", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stderr.strip() == "", proc.stderr  # no constraint or encoding warnings
    return proc.stdout


def walk(items: object) -> Iterator[Dataset]:
    """Every content item below, depth first."""
    for item in items or []:  # type: ignore[attr-defined]
        yield item
        yield from walk(item.get("ContentSequence"))
