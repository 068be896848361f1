"""A spectral Doppler image laid out as scanners export it.

A small apical 2D reference image with the Doppler cursor sits on top; the spectral display
fills the lower part with its baseline, a velocity scale to its right and the ECG along its
bottom. The spectral region starts at 44.5 % of the image height, which is row 342 of a
768-row export: the place EchoNet's Doppler models expect it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import UltrasoundRegion
from ai.phantom.a4c import A4cState, a4c_layout, draw_a4c
from ai.phantom.ecg import ECG_RGB, draw_ecg, ecg_signal
from ai.phantom.physiology import Patient
from ai.phantom.sector import Label, fit_sector, make_speckle, render, tissue_region
from ai.phantom.spectral import beats, envelope, render_spectrum

SPECTRAL_TOP = 0.445
ECG_BAND = 0.12  # bottom share of the spectral region holding the ECG trace
RGB = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DopplerImage:
    pixels: RGB  # (rows, columns, 3)
    regions: tuple[UltrasoundRegion, UltrasoundRegion]  # 2D reference, spectral
    truth: dict[str, Any]


def _nice_scale(v_cm_s: float, step: float) -> float:
    return step * math.ceil(v_cm_s / step)


def make_doppler(
    patient: Patient, kind: str, rows: int, columns: int, rng: np.random.Generator
) -> DopplerImage:
    """kind "TR" (CW through the tricuspid valve) or "MV" (PW at the mitral leaflet tips)."""
    if kind not in ("TR", "MV"):
        raise ValueError(f"kind must be 'TR' or 'MV', got {kind!r}")
    image = np.zeros((rows, columns, 3), np.uint8)
    reference = _reference_image(patient, kind, rows, columns, rng, image)
    spectral, truth = _spectral(patient, kind, rows, columns, rng, image)
    return DopplerImage(image, (reference, spectral), truth)


def _reference_image(
    patient: Patient, kind: str, rows: int, columns: int, rng: np.random.Generator, out: RGB
) -> UltrasoundRegion:
    layout, depth = a4c_layout(patient, rng)
    bottom = round(SPECTRAL_TOP * rows) - max(3, round(0.02 * rows))
    sector = fit_sector(depth, max(2, round(0.02 * rows)), bottom, columns // 4, 3 * columns // 4)
    labels = np.zeros((rows, columns), np.uint8)
    labels[sector.mask(rows, columns)] = Label.TISSUE
    state = A4cState(patient.edv_ml, patient.lv_length_ed_cm, 1.0)
    draw_a4c(labels, sector, layout, state)
    gray = render(labels, make_speckle(rng, sector, rows, columns), 0.0)
    out[:] = gray[:, :, None]
    # Cursor from the apex of the fan through the valve, with the PW gate on the mitral tips.
    axis = layout.axis
    base = np.asarray(layout.apex_cm) + state.length_cm * axis
    if kind == "TR":
        a_rv = 0.7 * state.half_width_cm + 0.4
        target = base - (state.half_width_cm + 1.35 + a_rv) * layout.lateral
    else:
        target = base - 0.6 * axis
    apex_px = np.array([sector.apex_x, sector.apex_y], float)
    target_px = sector.to_px(target)
    direction = (target_px - apex_px) / np.linalg.norm(target_px - apex_px)
    for step in range(0, int(sector.radius_px), 6):
        a = apex_px + step * direction
        b = apex_px + min(step + 3, sector.radius_px) * direction
        cv2.line(out, _pt(a), _pt(b), (200, 200, 200), 1)
    if kind == "MV":
        normal = np.array([-direction[1], direction[0]])
        for sign in (-1.0, 1.0):
            centre = target_px + sign * 4.0 * direction
            cv2.line(out, _pt(centre - 5 * normal), _pt(centre + 5 * normal), (230, 230, 230), 1)
    return tissue_region(sector)


def _pt(p: npt.NDArray[np.float64]) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _spectral(
    patient: Patient, kind: str, rows: int, columns: int, rng: np.random.Generator, out: RGB
) -> tuple[UltrasoundRegion, dict[str, Any]]:
    x0, x1 = round(0.04 * columns), columns - 1 - round(0.09 * columns)
    y0, y1 = round(SPECTRAL_TOP * rows), rows - 1 - round(0.02 * rows)
    height, width = y1 - y0 + 1, x1 - x0 + 1
    ecg_top = y1 - round(ECG_BAND * height)
    if kind == "TR":
        baseline = round(0.15 * height)
        scale = _nice_scale(patient.tr_vmax_cm_s * 1.12, 50.0)  # room below for the jet
        delta_y = -scale / (ecg_top - 2 - y0 - baseline)
    else:
        baseline = round(0.62 * height)
        scale = _nice_scale(max(patient.mv_e_cm_s, patient.mv_a_cm_s) * 1.2, 20.0)
        delta_y = -scale / baseline
    sweep_s = max(2.5, 3.3 * patient.rr_s)
    delta_x = sweep_s / width
    all_beats = beats(patient, kind, sweep_s, rng)
    times = np.arange(width, dtype=np.float64) * delta_x
    env = envelope(all_beats, times)
    velocity_of_row = (np.arange(height, dtype=np.float64) - baseline) * delta_y
    spectrum = render_spectrum(env, velocity_of_row, hollow=kind == "MV", rng=rng)
    spectrum[ecg_top - y0 :, :] = np.minimum(spectrum[ecg_top - y0 :, :], 0.08)
    out[y0 : y1 + 1, x0 : x1 + 1] = (np.clip(spectrum, 0.0, 1.0) * 255).astype(np.uint8)[..., None]
    out[y0 + baseline, x0 : x1 + 1] = 150  # the baseline, as scanners draw it
    _scale_marks(out, x1, y0 + baseline, delta_y, y0, ecg_top)
    r_waves = [b.r_wave_s for b in all_beats]
    draw_ecg(out, x0 + times / delta_x, ecg_signal(times, r_waves), ecg_top + 2, y1 - 1)
    region = UltrasoundRegion(
        spatial_format=3,
        data_type=4 if kind == "TR" else 3,
        flags=0,
        min_x0=x0,
        min_y0=y0,
        max_x1=x1,
        max_y1=y1,
        physical_units_x=4,
        physical_units_y=7,
        physical_delta_x=delta_x,
        physical_delta_y=delta_y,
        reference_pixel_x0=0,
        reference_pixel_y0=baseline,
        reference_physical_value_x=0.0,
        reference_physical_value_y=0.0,
    )
    truth = _beats_truth(all_beats, kind, region, times, env, sweep_s)
    truth["ecg"] = {
        "rgb": list(ECG_RGB),
        "rows": [ecg_top + 2, y1 - 1],
        "columns": [x0, x1],
        "r_wave_times_s": [round(t, 6) for t in r_waves if 0.0 <= t <= sweep_s],
    }
    truth["sweep_s"] = sweep_s
    truth["baseline_row"] = y0 + baseline
    return region, truth


def _scale_marks(
    out: RGB, x1: int, baseline_row: int, delta_y: float, top: int, bottom: int
) -> None:
    """Ticks every 50 cm/s (20 for small scales) right of the spectrum, labelled in m/s."""
    step = 50.0 if abs(delta_y) * (bottom - top) > 300 else 20.0
    x = x1 + 3
    if x + 6 >= out.shape[1]:
        return
    for k in range(-20, 21):
        row = round(baseline_row + k * step / delta_y)
        if not top <= row < bottom:
            continue
        size = 6 if k % 2 == 0 else 3
        out[row, x : x + size] = 220
        if k % 2 == 0 and x + 30 < out.shape[1]:
            text = f"{k * step / 100:.1f}"
            font = cv2.FONT_HERSHEY_SIMPLEX
            cv2.putText(out, text, (x + 8, row + 4), font, 0.3, (220, 220, 220), 1, cv2.LINE_AA)


def _beats_truth(
    all_beats: list[Any],
    kind: str,
    region: UltrasoundRegion,
    times: npt.NDArray[np.float64],
    env: npt.NDArray[np.float64],
    sweep_s: float,
) -> dict[str, Any]:
    """Per-beat peaks as drawn: the extreme envelope sample within each wave, fully in view."""
    baseline_row = region.min_y0 + (region.reference_pixel_y0 or 0)
    listed = []
    for beat in all_beats:
        entry: dict[str, Any] = {"r_wave_time_s": round(beat.r_wave_s, 6), "rr_s": beat.rr_s}
        complete = True
        for name, wave in beat.waves.items():
            end = wave.start_s + wave.duration_s
            if wave.start_s < 0.0 or end > sweep_s:
                complete = False
                break
            # The wave's own peak column; the drawn envelope there is this wave alone, since
            # E peaks before A starts and A after E ends (checked, not assumed).
            index = int(np.argmax(np.abs(wave.velocity(times))))
            v = float(env[index])
            if not math.isclose(v, float(wave.velocity(times[index : index + 1])[0])):
                raise RuntimeError(f"{name} wave fused with its neighbour; lower the heart rate")
            entry[name] = {
                "peak_velocity_cm_s": v,
                "peak_time_s": float(times[index]),
                "peak_column": region.min_x0 + index,
                "peak_row": baseline_row + v / region.physical_delta_y,
                "start_s": wave.start_s,
                "end_s": end,
            }
        if complete:
            listed.append(entry)
    return {"doppler_mode": "CW" if kind == "TR" else "PW", "beats": listed}
