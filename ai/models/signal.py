"""Small 1-D signal helpers for cardiac phase (no SciPy dependency).

find_peaks mirrors scipy.signal.find_peaks with `distance` (and optional `prominence`), which
the EchoNet code uses: local maxima (the middle of a flat top), then the highest kept first and
any peak closer than `distance` samples to a kept one dropped.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def smooth(signal: FloatArray, kernel: tuple[float, ...] = (1, 2, 3, 2, 1)) -> FloatArray:
    """Convolution with the normalised kernel, output the same length (numpy 'same')."""
    weights = np.asarray(kernel, dtype=np.float64)
    result: FloatArray = np.convolve(signal, weights / weights.sum(), mode="same")
    return result


def _local_maxima(x: FloatArray) -> list[int]:
    peaks: list[int] = []
    i = 1
    n = len(x)
    while i < n - 1:
        if x[i - 1] < x[i]:
            j = i
            while j + 1 < n - 1 and x[j + 1] == x[i]:
                j += 1
            if x[j + 1] < x[i]:
                peaks.append((i + j) // 2)
            i = j + 1
        else:
            i += 1
    return peaks


def _prominence(x: FloatArray, peak: int) -> float:
    # Height above the higher of the two minima reaching the nearest higher samples.
    left = peak
    left_min = x[peak]
    while left > 0 and x[left - 1] <= x[peak]:
        left -= 1
        left_min = min(left_min, x[left])
    right = peak
    right_min = x[peak]
    while right < len(x) - 1 and x[right + 1] <= x[peak]:
        right += 1
        right_min = min(right_min, x[right])
    return float(x[peak] - max(left_min, right_min))


def find_peaks(signal: FloatArray, distance: int = 1, prominence: float | None = None) -> list[int]:
    x = np.asarray(signal, dtype=np.float64)
    if len(x) < 3 or not np.all(np.isfinite(x)):
        return []
    peaks = _local_maxima(x)
    if prominence is not None:
        peaks = [p for p in peaks if _prominence(x, p) >= prominence]
    kept: list[int] = []
    for peak in sorted(peaks, key=lambda p: (-x[p], p)):
        if all(abs(peak - other) >= distance for other in kept):
            kept.append(peak)
    return sorted(kept)


def fill_gaps(signal: FloatArray) -> FloatArray:
    """Linear interpolation over NaN samples (frames where a point was not found)."""
    x = np.asarray(signal, dtype=np.float64).copy()
    bad = ~np.isfinite(x)
    if bad.all() or not bad.any():
        return x
    index = np.arange(len(x))
    x[bad] = np.interp(index[bad], index[~bad], x[~bad])
    return x


def peaks_and_troughs(curve: FloatArray, distance: int = 25) -> tuple[list[int], list[int]]:
    """(peaks, troughs) of a curve at least `distance` samples apart, the first and the last
    extremum overall dropped (the EchoNet rule: a clip's ends cut a beat short)."""
    extrema = sorted(
        [(i, True) for i in find_peaks(curve, distance)]
        + [(i, False) for i in find_peaks(-curve, distance)]
    )[1:-1]
    return [i for i, peak in extrema if peak], [i for i, peak in extrema if not peak]


def lowpass(signal: FloatArray, fps: float, max_bpm: float = 140.0) -> FloatArray:
    """Keep the FFT bins up to the highest heart rate expected (EchoNet-Measurements' rule:
    cutoff bin = ceil(max_bpm / 60 / fps · length)); everything faster is noise."""
    x = np.asarray(signal, dtype=np.float64)
    cutoff = int(np.ceil(max_bpm / 60.0 / fps * len(x)))
    spectrum = np.fft.fft(x)
    if cutoff + 1 < len(x) - cutoff:
        spectrum[cutoff + 1 : len(x) - cutoff] = 0
    filtered: FloatArray = np.real(np.fft.ifft(spectrum))
    return filtered
