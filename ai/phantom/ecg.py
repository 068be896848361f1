"""A synthetic ECG (P, QRS, T as Gaussians) and its green trace on the image.

The trace is drawn in pure-ish green, (0, 230, 0): G > 200 and R < 100, the colour EchoNet's
Doppler code blanks before inference, so the phantom's trace behaves like a scanner's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

ECG_RGB = (0, 230, 0)

# (offset from the R wave in s, width in s, amplitude) of each deflection.
_WAVES = ((-0.16, 0.025, 0.15), (-0.03, 0.008, -0.12), (0.0, 0.011, 1.0), (0.03, 0.009, -0.25))


def ecg_signal(times_s: npt.NDArray[np.float64], r_waves_s: Sequence[float]) -> np.ndarray:
    """Millivolt-like trace sampled at times_s for beats with the given R-wave times."""
    out = np.zeros_like(times_s)
    for r in r_waves_s:
        for offset, width, amplitude in _WAVES:
            out += amplitude * np.exp(-0.5 * ((times_s - r - offset) / width) ** 2)
        # The T wave comes later at slower rates (QT follows RR loosely).
        t_offset = 0.28 * math.sqrt(max(0.4, _rr_after(r, r_waves_s)))
        out += 0.3 * np.exp(-0.5 * ((times_s - r - t_offset) / 0.05) ** 2)
    return out


def _rr_after(r: float, r_waves_s: Sequence[float]) -> float:
    later = [t for t in r_waves_s if t > r]
    return (min(later) - r) if later else 0.9


def draw_ecg(
    image: npt.NDArray[np.uint8],
    columns: npt.NDArray[np.float64],
    signal: np.ndarray,
    top: int,
    bottom: int,
) -> None:
    """Draw the trace so the R peak reaches near `top` and the baseline sits near `bottom`."""
    height = bottom - top
    baseline = bottom - 0.3 * height
    rows = baseline - signal * 0.6 * height
    points = np.stack([columns, rows], axis=1)
    fixed_point = np.round(points * 16).astype(np.int32)  # 4 fractional bits
    cv2.polylines(image, [fixed_point], False, ECG_RGB, 1, cv2.LINE_8, 4)
