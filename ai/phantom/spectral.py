"""Spectral Doppler traces: the TR jet (CW) and mitral inflow E and A waves (PW).

Velocities follow the display convention of PS3.3 C.8.5.5: flow toward the transducer is
positive and drawn above the baseline. From the apex, mitral inflow (LA → LV) runs toward the
probe, so E and A lie above the baseline; the TR jet (RV → RA) runs away from it and lies below.
Each beat has its own RR interval and peak, so the ground truth is per beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ai.phantom.physiology import A_WAVE_S, E_WAVE_S, IVRT_S, Patient, end_systole_s

FloatArray = npt.NDArray[np.float64]

TR_ONSET_S = 0.04  # after the R wave: isovolumic contraction is short with a leaking valve
TR_PEAK_AT = 0.45  # the jet peaks a little before mid-systole
E_PEAK_AT = 0.35
A_PEAK_AT = 0.45


@dataclass(frozen=True)
class Wave:
    """One velocity hump: start, duration, signed peak (cm/s) and where in it the peak lies."""

    start_s: float
    duration_s: float
    peak_cm_s: float
    peak_at: float

    @property
    def peak_time_s(self) -> float:
        return self.start_s + self.peak_at * self.duration_s

    def velocity(self, t: FloatArray) -> FloatArray:
        x = np.clip((t - self.start_s) / self.duration_s, 0.0, 1.0)
        # Skew a half sine so its maximum falls at peak_at instead of 0.5.
        k = math.log(0.5) / math.log(self.peak_at)
        shape = np.sin(np.pi * x**k) ** 0.8
        out: FloatArray = self.peak_cm_s * shape
        return out


@dataclass(frozen=True)
class Beat:
    r_wave_s: float
    rr_s: float
    waves: dict[str, Wave]  # "TR" or "E" and "A"


def beats(patient: Patient, kind: str, sweep_s: float, rng: np.random.Generator) -> list[Beat]:
    """Beats covering the sweep (from before it starts), RR and peaks varying a little."""
    out: list[Beat] = []
    t = -float(rng.uniform(0.3, 0.9)) * patient.rr_s
    while t < sweep_s:
        rr = patient.rr_s * float(1.0 + rng.uniform(-0.04, 0.04))
        es = end_systole_s(rr)
        if kind == "TR":
            peak = -patient.tr_vmax_cm_s * float(1.0 - rng.uniform(0.0, 0.06))
            waves = {"TR": Wave(t + TR_ONSET_S, es + 0.03 - TR_ONSET_S, peak, TR_PEAK_AT)}
        else:
            e_start = t + es + IVRT_S
            a_start = t + rr - A_WAVE_S - 0.02
            e_length = min(E_WAVE_S, max(0.08, a_start + 0.05 - e_start))
            waves = {
                "E": Wave(e_start, e_length, _vary(patient.mv_e_cm_s, rng), E_PEAK_AT),
                "A": Wave(a_start, A_WAVE_S, _vary(patient.mv_a_cm_s, rng), A_PEAK_AT),
            }
        out.append(Beat(t, rr, waves))
        t += rr
    return out


def _vary(value: float, rng: np.random.Generator) -> float:
    return value * float(1.0 + rng.uniform(-0.04, 0.04))


def envelope(all_beats: list[Beat], t: FloatArray) -> FloatArray:
    """The maximal velocity trace: the largest |v| of any wave at each time (fused E/A too)."""
    out = np.zeros_like(t)
    for beat in all_beats:
        for wave in beat.waves.values():
            v = wave.velocity(t)
            out = np.where(np.abs(v) > np.abs(out), v, out)
    return out


def render_spectrum(
    envelope_cm_s: FloatArray,
    velocity_of_row: FloatArray,
    hollow: bool,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Brightness 0..1, shape (rows, columns), of a spectral display.

    A pixel is lit when its velocity lies between the baseline and the envelope (same sign),
    so the envelope edge in the image is the ground truth to within a pixel. PW laminar inflow
    is hollow (a clear window near the baseline); the CW jet is filled.
    """
    env = envelope_cm_s[None, :]
    vel = velocity_of_row[:, None]
    ratio = np.where(np.abs(env) > 1e-6, vel / np.where(env == 0, 1.0, env), -1.0)
    lit = (ratio >= 0.0) & (ratio <= 1.0) & (np.abs(env) > 1e-6)
    profile = 0.2 + 0.8 * ratio**3 if hollow else 0.5 + 0.5 * ratio**2
    grain = rng.gamma(4.0, 0.25, size=lit.shape)  # mean 1: spectral "salt"
    brightness = np.where(lit, np.clip(profile * grain, 0.35, 1.0), 0.0)
    noise = rng.random(lit.shape) * 0.08
    return (brightness + noise).astype(np.float32)
