"""Small 1-D signal helpers for cardiac phase.

Peaks come from scipy.signal.find_peaks itself, the function the EchoNet code calls, so plateaus,
edges and the order of its filters (distance before prominence) are the reference's by
construction (docs/METHODS.md, "Peak finding").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.signal import find_peaks

FloatArray = npt.NDArray[np.float64]


def smooth(signal: FloatArray, kernel: tuple[float, ...] = (1, 2, 3, 2, 1)) -> FloatArray:
    """Convolution with the normalised kernel, output the same length (numpy 'same')."""
    weights = np.asarray(kernel, dtype=np.float64)
    result: FloatArray = np.convolve(signal, weights / weights.sum(), mode="same")
    return result


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
    """(peaks, troughs) of a curve, each at least `distance` samples apart.

    EchoNet-LVH's and EchoNet-Measurements' rule: when the curve has both peaks and troughs, the
    first and the last extremum overall are dropped (a clip's ends cut a beat short); a curve
    with only one kind keeps all of them.
    """
    x = np.asarray(curve, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return [], []
    peaks = [int(i) for i in find_peaks(x, distance=distance)[0]]
    troughs = [int(i) for i in find_peaks(-x, distance=distance)[0]]
    if peaks and troughs:
        ends = {min(peaks[0], troughs[0]), max(peaks[-1], troughs[-1])}
        peaks = [i for i in peaks if i not in ends]
        troughs = [i for i in troughs if i not in ends]
    return peaks, troughs


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
