"""The two 2D cine clips, PLAX and A4C, with their per-frame ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ai.clip import UltrasoundRegion
from ai.phantom.a4c import A4cState, a4c_layout, draw_a4c, lv_outline_cm
from ai.phantom.physiology import IVRT_S, CineTiming, Patient, contraction
from ai.phantom.plax import PlaxState, draw_plax, keypoints_cm, plax_layout
from ai.phantom.sector import (
    Label,
    Labels,
    Sector,
    Speckle,
    depth_marks,
    fit_sector,
    make_speckle,
    render,
    tissue_region,
)


@dataclass(frozen=True)
class Cine:
    frames: npt.NDArray[np.uint8]  # (n, rows, columns) grey; written as RGB/YBR
    labels: npt.NDArray[np.uint8]  # (n, rows, columns): the label map of each frame
    region: UltrasoundRegion
    truth: dict[str, Any]


def clip_sector(depth_cm: float, rows: int, columns: int) -> Sector:
    margin = max(2, round(0.03 * rows))
    return fit_sector(depth_cm, margin, rows - 1 - margin, 2, columns - 1 - round(0.05 * columns))


def valve_open(phase_s: float, rr_s: float, es_s: float) -> float:
    """Mitral/tricuspid opening: shut from the R wave to the end of isovolumic relaxation."""
    t = phase_s % rr_s
    opens = es_s + IVRT_S
    if t < opens:
        return 0.0
    return float(min(1.0, (t - opens) / 0.04, (rr_s - t) / 0.03))


def _frames(
    sector: Sector, rows: int, columns: int, rng: np.random.Generator, count: int
) -> tuple[npt.NDArray[np.uint8], Labels, Speckle]:
    frames = np.zeros((count, rows, columns), np.uint8)
    labels = np.empty((count, rows, columns), np.uint8)
    labels[:] = np.where(sector.mask(rows, columns), Label.TISSUE, Label.OUTSIDE).astype(np.uint8)
    return frames, labels, make_speckle(rng, sector, rows, columns)


def _finish(
    frame: npt.NDArray[np.uint8], labels: Labels, speckle: Speckle, fade: float, sector: Sector
) -> None:
    frame[:] = render(labels, speckle, fade)
    depth_marks(frame, sector)


def _fade(index: int) -> float:
    # Speckle decorrelates slowly, as it does when tissue moves through the beam.
    return 0.5 - 0.5 * float(np.cos(index * 0.25))


def make_plax(
    patient: Patient, timing: CineTiming, rows: int, columns: int, rng: np.random.Generator
) -> Cine:
    layout, depth = plax_layout(patient, rng)
    sector = clip_sector(depth, rows, columns)
    times = timing.times_s()
    c = contraction(times, timing.rr_s, timing.es_s)
    frames, labels, speckle = _frames(sector, rows, columns, rng, len(times))
    per_frame = []
    for i, t in enumerate(times):
        state = PlaxState(
            ivs_cm=patient.ivsd_cm + (patient.ivss_cm - patient.ivsd_cm) * c[i],
            lvid_cm=patient.lvidd_cm + (patient.lvids_cm - patient.lvidd_cm) * c[i],
            lvpw_cm=patient.lvpwd_cm + (patient.lvpws_cm - patient.lvpwd_cm) * c[i],
            valve_open=valve_open(float(t), timing.rr_s, timing.es_s),
        )
        draw_plax(labels[i], sector, layout, state)
        _finish(frames[i], labels[i], speckle, _fade(i), sector)
        points = sector.to_px(keypoints_cm(layout, state))
        per_frame.append(
            {
                "index": i,
                "time_s": float(t),
                "keypoints_px": points.round(3).tolist(),
                "LVPW_cm": state.lvpw_cm,
                "LVID_cm": state.lvid_cm,
                "IVS_cm": state.ivs_cm,
            }
        )
    truth = {
        "view": "plax",
        "diastolic": {
            "IVSd_cm": patient.ivsd_cm,
            "LVIDd_cm": patient.lvidd_cm,
            "LVPWd_cm": patient.lvpwd_cm,
        },
        "systolic": {
            "IVSs_cm": patient.ivss_cm,
            "LVIDs_cm": patient.lvids_cm,
            "LVPWs_cm": patient.lvpws_cm,
        },
        "keypoint_order": ["LVPW epicardium", "LVPW endocardium", "IVS LV side", "IVS RV side"],
        "frames": per_frame,
    }
    return Cine(frames, labels, tissue_region(sector), truth)


def make_a4c(
    patient: Patient, timing: CineTiming, rows: int, columns: int, rng: np.random.Generator
) -> Cine:
    layout, depth = a4c_layout(patient, rng)
    sector = clip_sector(depth, rows, columns)
    times = timing.times_s()
    c = contraction(times, timing.rr_s, timing.es_s)
    frames, labels, speckle = _frames(sector, rows, columns, rng, len(times))
    per_frame = []
    for i, t in enumerate(times):
        state = A4cState(
            volume_ml=patient.edv_ml + (patient.esv_ml - patient.edv_ml) * c[i],
            length_cm=patient.lv_length_ed_cm
            + (patient.lv_length_es_cm - patient.lv_length_ed_cm) * c[i],
            valve_open=valve_open(float(t), timing.rr_s, timing.es_s),
        )
        outline = lv_outline_cm(layout, state)
        if not sector.contains_cm(outline, margin_cm=0.2):
            raise RuntimeError("phantom A4C layout puts the LV outside the sector")
        draw_a4c(labels[i], sector, layout, state)
        _finish(frames[i], labels[i], speckle, _fade(i), sector)
        outline_px = sector.to_px(outline)
        per_frame.append(
            {
                "index": i,
                "time_s": float(t),
                "lv_volume_ml": state.volume_ml,
                "lv_length_cm": state.length_cm,
                "lv_area_cm2": state.area_cm2,
                "lv_outline_px": outline_px.round(3).tolist(),
                "apex_px": outline_px[len(outline_px) // 2].round(3).tolist(),
                "mitral_annulus_px": [
                    outline_px[0].round(3).tolist(),
                    outline_px[-1].round(3).tolist(),
                ],
            }
        )
    truth = {
        "view": "a4c",
        "edv_ml": patient.edv_ml,
        "esv_ml": patient.esv_ml,
        "ef_percent": patient.ef_percent,
        "frames": per_frame,
    }
    return Cine(frames, labels, tissue_region(sector), truth)
