"""The phantom's patient: dimensions, volumes, velocities and the timing of one cardiac cycle.

Every value is drawn once per study from a seeded numpy Generator, inside the physiological
ranges the issue names (IVSd 0.6–1.6 cm, LVIDd 3.5–6.5 cm, EF 20–75 %, TR Vmax 2–4.5 m/s).
The 2D clips are sampled so that every R wave and every end-systole falls exactly on a frame:
the frame time is the RR interval divided by a whole number of frames, which makes the
end-diastolic and end-systolic frames carry the diastolic and systolic values exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Isovolumic relaxation: the gap between end-systole and the opening of the mitral valve.
IVRT_S = 0.07
E_WAVE_S = 0.20  # duration of early (passive) filling
A_WAVE_S = 0.13  # duration of the atrial kick, ending at the next R wave
A_FILL_SHARE = 0.25  # share of the stroke volume that the atrial kick brings


@dataclass(frozen=True)
class Patient:
    """One synthetic patient. Lengths in cm, volumes in ml, velocities in cm/s."""

    heart_rate_bpm: float
    ivsd_cm: float
    lvidd_cm: float
    lvpwd_cm: float
    ivss_cm: float
    lvids_cm: float
    lvpws_cm: float
    edv_ml: float
    esv_ml: float
    lv_length_ed_cm: float
    lv_length_es_cm: float
    tr_vmax_cm_s: float
    mv_e_cm_s: float
    mv_a_cm_s: float
    plax_tilt_deg: float
    rv_depth_cm: float
    a4c_tilt_deg: float

    @property
    def ef_percent(self) -> float:
        return 100.0 * (self.edv_ml - self.esv_ml) / self.edv_ml

    @property
    def rr_s(self) -> float:
        return 60.0 / self.heart_rate_bpm


def sample_patient(rng: np.random.Generator, heart_rate_bpm: float | None = None) -> Patient:
    """Draw a patient; the heart rate is drawn too unless given."""
    hr = float(heart_rate_bpm) if heart_rate_bpm is not None else float(rng.uniform(55, 95))
    # Above ~120 bpm the E and A waves fuse and their peaks stop being separable.
    if not 30.0 <= hr <= 120.0:
        raise ValueError(f"heart_rate_bpm must lie in 30–120, got {hr}")
    ivsd = float(rng.uniform(0.6, 1.6))
    lvpwd = float(np.clip(ivsd * rng.uniform(0.8, 1.1), 0.6, 1.6))
    lvidd = float(rng.uniform(3.5, 6.5))
    ef = float(rng.uniform(20.0, 75.0))
    # Fractional shortening follows EF loosely (Teichholz-like), so a low-EF heart also
    # shortens little in the PLAX clip.
    fs = float(np.clip(0.05 + 0.45 * ef / 100.0 + rng.normal(0, 0.02), 0.08, 0.45))
    thickening = 1.0 + 0.5 * fs / 0.45 + float(rng.uniform(0.0, 0.1))
    edv = float(rng.uniform(80.0, 190.0))
    e_wave = float(rng.uniform(50.0, 120.0))
    e_over_a = float(rng.uniform(0.6, 2.2))
    lv_length_ed = float(rng.uniform(7.5, 9.5))
    return Patient(
        heart_rate_bpm=hr,
        ivsd_cm=ivsd,
        lvidd_cm=lvidd,
        lvpwd_cm=lvpwd,
        ivss_cm=ivsd * thickening,
        lvids_cm=lvidd * (1.0 - fs),
        lvpws_cm=lvpwd * thickening,
        edv_ml=edv,
        esv_ml=edv * (1.0 - ef / 100.0),
        lv_length_ed_cm=lv_length_ed,
        lv_length_es_cm=lv_length_ed * float(rng.uniform(0.85, 0.92)),  # long axis shortens
        tr_vmax_cm_s=float(rng.uniform(200.0, 450.0)),
        mv_e_cm_s=e_wave,
        mv_a_cm_s=float(np.clip(e_wave / e_over_a, 30.0, 110.0)),
        plax_tilt_deg=float(rng.uniform(8.0, 20.0)),
        rv_depth_cm=float(rng.uniform(1.8, 2.8)),
        a4c_tilt_deg=float(rng.uniform(-8.0, 8.0)),
    )


def end_systole_s(rr_s: float) -> float:
    """R wave to end-systole; shortens with heart rate like the QT interval (Bazett)."""
    return 0.36 * math.sqrt(rr_s)


@dataclass(frozen=True)
class CineTiming:
    """Frame timing of a 2D clip whose R waves and end-systoles fall on frames."""

    frames_per_beat: int
    es_frame_in_beat: int
    frame_time_s: float
    cycles: int

    @property
    def number_of_frames(self) -> int:
        # One more frame than the cycles hold, so the last end-diastole is in the clip too.
        return self.frames_per_beat * self.cycles + 1

    @property
    def rr_s(self) -> float:
        return self.frames_per_beat * self.frame_time_s

    @property
    def es_s(self) -> float:
        return self.es_frame_in_beat * self.frame_time_s

    def times_s(self) -> FloatArray:
        return np.arange(self.number_of_frames, dtype=np.float64) * self.frame_time_s

    def ed_frames(self) -> list[int]:
        return list(range(0, self.number_of_frames, self.frames_per_beat))

    def es_frames(self) -> list[int]:
        return [beat * self.frames_per_beat + self.es_frame_in_beat for beat in range(self.cycles)]


def cine_timing(heart_rate_bpm: float, frame_rate: float, cycles: int) -> CineTiming:
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    rr = 60.0 / heart_rate_bpm
    per_beat = max(8, round(rr * frame_rate))
    frame_time = rr / per_beat
    es_frame = max(1, round(end_systole_s(rr) / frame_time))
    return CineTiming(per_beat, es_frame, frame_time, cycles)


def contraction(phase_s: FloatArray, rr_s: float, es_s: float) -> FloatArray:
    """How far the ventricle has contracted: 0 at end-diastole, 1 at end-systole.

    Ejection is a half cosine from the R wave to end-systole; after isovolumic relaxation the
    early filling brings back (1 − A_FILL_SHARE) of the volume, then the atrial kick the rest
    just before the next R wave. phase_s is the time since the last R wave.
    """
    t = np.mod(phase_s, rr_s)
    e_start = es_s + IVRT_S
    a_start = max(rr_s - A_WAVE_S, e_start + 0.02)
    e_end = min(e_start + E_WAVE_S, a_start)
    out = np.ones_like(t)
    systole = t <= es_s
    out[systole] = 0.5 * (1.0 - np.cos(np.pi * t[systole] / es_s))
    filling = (t > e_start) & (t <= e_end)
    span = max(e_end - e_start, 1e-6)
    out[filling] = 1.0 - (1.0 - A_FILL_SHARE) * 0.5 * (
        1.0 - np.cos(np.pi * (t[filling] - e_start) / span)
    )
    diastasis = (t > e_end) & (t <= a_start)
    out[diastasis] = A_FILL_SHARE
    atrial = t > a_start
    a_length = rr_s - a_start
    out[atrial] = A_FILL_SHARE * 0.5 * (1.0 + np.cos(np.pi * (t[atrial] - a_start) / a_length))
    return out
