"""Cardiac phase rules against the EchoNet reference's own rules, restated here from its code.

EchoNet-Dynamic (echonet/utils/segmentation.py): end-systoles are
scipy.signal.find_peaks(−size, distance=20, prominence=½·(s[round(n**0.95)] − s[round(n**0.05)]))
with s the sorted sizes. EchoNet-LVH (utils.get_systole_diastole), the same in
EchoNet-Measurements: smooth with [1,2,3,2,1]/9 (numpy 'same'), find_peaks(±curve, distance=25),
and, only when both kinds were found, drop the earliest and the latest extremum.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from ai.models.signal import peaks_and_troughs
from ai.pipelines.a4c import area_phases
from ai.pipelines.plax import cardiac_phases

CURVES = 3000


def reference_systoles(size: np.ndarray) -> list[int]:
    ordered = sorted(size)
    spread = ordered[round(len(size) ** 0.95)] - ordered[round(len(size) ** 0.05)]
    return [int(i) for i in scipy.signal.find_peaks(-size, distance=20, prominence=spread / 2)[0]]


def reference_lvh_phases(lvid: np.ndarray) -> tuple[list[int], list[int]]:
    kernel = np.array([1, 2, 3, 2, 1]) / 9
    smooth = np.convolve(lvid, kernel, mode="same")
    ed = [int(i) for i in scipy.signal.find_peaks(smooth, distance=25)[0]]
    es = [int(i) for i in scipy.signal.find_peaks(-smooth, distance=25)[0]]
    if ed and es:
        ends = (min(ed + es), max(ed + es))
        ed = [i for i in ed if i not in ends]
        es = [i for i in es if i not in ends]
    return ed, es


def noisy_curves(seed: int) -> list[np.ndarray]:
    """LV-area-like curves: a beat of 18–60 frames, noise up to a third of the swing, integer
    sizes (they are pixel counts), plateaus from the rounding, some flat or nearly flat."""
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(CURVES):
        n = int(rng.integers(6, 160))
        t = np.arange(n)
        period = rng.uniform(18, 60)
        swing = rng.uniform(0, 400)
        curve = 1500 + swing * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        curve += rng.normal(0, rng.uniform(0, swing / 3 + 1), n)
        curves.append(np.round(curve))
    return curves


def test_dynamic_systoles_match_the_reference_rule_on_random_curves() -> None:
    quantile_differs = 0
    for size in noisy_curves(seed=13):
        assert area_phases(size, 20)[1] == reference_systoles(size)
        low, high = np.quantile(size, [0.05, 0.95])
        by_quantile = scipy.signal.find_peaks(-size, distance=20, prominence=(high - low) / 2)[0]
        quantile_differs += list(by_quantile) != reference_systoles(size)
    # The fuzz reaches curves where the rule matters (np.quantile would keep other frames).
    assert quantile_differs > 50


def test_lvh_phases_match_the_reference_rule_on_random_curves() -> None:
    one_kind = 0
    for lvid in noisy_curves(seed=7):
        ed, es = cardiac_phases(lvid, 25)
        assert (ed, es) == reference_lvh_phases(lvid)
        one_kind += bool(ed) != bool(es)
    assert one_kind > 20  # the fuzz holds curves with only peaks or only troughs


def test_distance_is_applied_before_prominence() -> None:
    """Two peaks 10 frames apart: the higher (frame 10) has prominence 1, the lower (frame 20)
    prominence 4. scipy keeps the higher by distance first, then drops it by prominence: none.
    Filtering by prominence first would keep frame 20."""
    curve = np.interp(np.arange(31), [0, 8, 10, 15, 20, 25, 30], [4, 4, 5, 0.5, 4.5, 0.5, 0.5])
    prominences = scipy.signal.peak_prominences(curve, [10, 20])[0]
    np.testing.assert_allclose(prominences, [1.0, 4.0])
    # area_phases's ED rule on this curve: prominence ½ × spread; n = 31 → order statistics
    # at index round(31 ** 0.05) = 1 and round(31 ** 0.95) = 26 of the sorted values.
    ordered = np.sort(curve)
    assert round(31**0.05) == 1 and round(31**0.95) == 26
    assert 1.0 < (ordered[26] - ordered[1]) / 2 <= 4.0
    assert area_phases(curve, 20)[0] == []
    assert area_phases(curve, 5)[0] == [20]  # far enough apart: prominence alone decides


def test_plateaus_and_edges_as_scipy() -> None:
    """A flat top peaks at its middle (left middle for an even width); a maximum at either end
    is never a peak."""
    curve = np.array([9, 1, 3, 3, 1, 5, 5, 5, 5, 1, 2, 1, 9], dtype=float)
    assert [int(i) for i in scipy.signal.find_peaks(curve)[0]] == [2, 6, 10]
    # Troughs 1, 4, 9, 11: the earliest (1) and latest (11) extremum are both troughs.
    assert peaks_and_troughs(curve, 1) == ([2, 6, 10], [4, 9])


def test_one_kind_curves_keep_every_extremum() -> None:
    """A single hump has a peak and no trough (its minima are at the ends, which are never
    extrema): the reference keeps the peak, as it keeps a single valley's trough. With both
    kinds it drops the earliest and the latest extremum overall."""
    t = np.arange(60, dtype=float)
    hump = np.exp(-0.5 * ((t - 25) / 8) ** 2)
    assert peaks_and_troughs(hump, 25) == ([25], [])
    assert peaks_and_troughs(-hump, 25) == ([], [25])
    wave = np.cos(2 * np.pi * np.arange(100) / 30)
    assert scipy.signal.find_peaks(wave, distance=25)[0].tolist() == [30, 60, 90]
    assert scipy.signal.find_peaks(-wave, distance=25)[0].tolist() == [15, 45, 75]
    assert peaks_and_troughs(wave, 25) == ([30, 60], [45, 75])  # 15 first, 90 last
    two_humps = np.exp(-0.5 * ((t - 15) / 5) ** 2) + np.exp(-0.5 * ((t - 45) / 5) ** 2)
    assert peaks_and_troughs(two_humps, 25) == ([], [30])  # both peaks are the ends
    assert peaks_and_troughs(np.full(50, 3.0), 25) == ([], [])
