"""Findings with known values: what a correct pipeline would return on a phantom clip, built
from the phantom's ground truth (its JSON), so overlay tests see labels and calipers that the
report reports (random-weight models give values the report withholds).

PLAX: IVSd, LVIDd, LVPWd per end-diastolic frame and LVIDs per end-systolic frame, each beat's
caliper between the truth's keypoints, median over beats (EchoNet's convention). Doppler: each
beat's peak (column, row) and velocity: TR Vmax the highest, E and A the mean. A4C: the LVEF
of the truth over the clip's frames (no caliper).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ai.findings import (
    Aggregation,
    Beat,
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)

KNOWN = Provenance("classical", "0.3")
# keypoint_order of the phantom's PLAX truth
_EPI, _ENDO, _IVS_LV, _IVS_RV = range(4)
# name -> (truth value per frame, caliper from keypoint, to keypoint, phase frames, phase)
_PLAX = {
    "IVSd": ("IVS_cm", _IVS_RV, _IVS_LV, "ed_frames", "diastole"),
    "LVIDd": ("LVID_cm", _IVS_LV, _ENDO, "ed_frames", "diastole"),
    "LVPWd": ("LVPW_cm", _ENDO, _EPI, "ed_frames", "diastole"),
    "LVIDs": ("LVID_cm", _IVS_LV, _ENDO, "es_frames", "systole"),
}


def truth(phantom: Path, clip: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((phantom / f"{clip}.json").read_text())
    return document


def plax_result(
    doc: dict[str, Any], flags: Mapping[str, tuple[str, ...]] | None = None
) -> ClipResult:
    frames = doc["frames"]
    findings = []
    for name, (value_key, start, end, phase_frames, phase) in _PLAX.items():
        beats = tuple(
            Beat(
                frames[f][value_key],
                f,
                (tuple(frames[f]["keypoints_px"][start]), tuple(frames[f]["keypoints_px"][end])),
            )
            for f in doc[phase_frames]
        )
        findings.append(
            Finding(
                name,
                statistics.median(b.value for b in beats),
                "cm",
                KNOWN,
                frames=tuple(b.frame for b in beats),
                points=tuple(p for b in beats for p in b.points),
                cardiac_phase=phase,
                flags=(flags or {}).get(name, ()),
                beats=beats,
                aggregation=Aggregation.MEDIAN,
            )
        )
    return _result(doc, View.PLAX, "plax", findings)


def doppler_result(
    doc: dict[str, Any], flags: Mapping[str, tuple[str, ...]] | None = None
) -> ClipResult:
    waves = {"TR": ("TR_Vmax", Aggregation.MAX), "E": ("MV_E", Aggregation.MEAN)}
    waves["A"] = ("MV_A", Aggregation.MEAN)
    findings = []
    for wave, (name, aggregation) in waves.items():
        peaks = [beat[wave] for beat in doc["beats"] if wave in beat]
        if not peaks:
            continue
        beats = tuple(
            Beat(p["peak_velocity_cm_s"], 0, ((float(p["peak_column"]), float(p["peak_row"])),))
            for p in peaks
        )
        speeds = [b.value for b in beats]
        value = max(speeds, key=abs) if aggregation is Aggregation.MAX else statistics.fmean(speeds)
        findings.append(
            Finding(
                name,
                value,
                "cm/s",
                KNOWN,
                frames=(0,),
                points=tuple(b.points[0] for b in beats),
                cardiac_phase="systole" if wave == "TR" else "diastole",
                flags=(flags or {}).get(name, ()),
                beats=beats,
                aggregation=aggregation,
            )
        )
    return _result(doc, View.DOPPLER, "doppler", findings, doc.get("doppler_mode"))


def a4c_result(doc: dict[str, Any]) -> ClipResult:
    lvef = Finding(
        "LVEF",
        doc["ef_percent"],
        "%",
        KNOWN,
        frames=(doc["ed_frames"][0], doc["es_frames"][0]),
        cardiac_phase=None,
    )
    return _result(doc, View.A4C, "a4c", [lvef])


def _result(
    doc: dict[str, Any],
    view: View,
    pipeline: str,
    findings: list[Finding],
    mode: str | None = None,
) -> ClipResult:
    return ClipResult(
        doc["sop_instance_uid"],
        ViewDecision(view, "test", 1.0, doppler_mode=mode),
        (PipelineResult(pipeline, PipelineStatus.OK, tuple(findings)),),
        frame_count=doc["number_of_frames"],
        frame_time_ms=doc["frame_time_ms"],
    )
