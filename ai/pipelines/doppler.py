"""Classical spectral Doppler engine: peak velocities from the spectral strip, no weights.

Steps:

1. The strip is the spectral region (RegionDataType 3 PW / 4 CW) cropped by its own bounds,
   never by a fixed row. The baseline is RegionLocationMinY0 + ReferencePixelY0 and the velocity
   at image row r is ReferencePixelPhysicalValueY + (r − baseline) × PhysicalDeltaY in cm/s, with
   the sign the calibration gives (PhysicalDeltaY is usually negative: flow toward the
   transducer is drawn above the baseline and positive, flow away below it and negative).
   Frequency scales (RegionFlags bit 2) and regions without ReferencePixelY0 are refused.
2. Envelope per column: coloured pixels (ECG trace, markers) are dropped; a row-median is
   subtracted so that full-width horizontal lines (the baseline, grid lines) vanish; a 3×3
   median filter removes speckle; the intensity threshold sits between the noise floor and the
   spectrum's brightness; small connected blobs (text, speckle) are discarded; the envelope is
   the farthest pixel from the baseline on each side, then median-filtered along time so that a
   thin vertical line cannot make a peak.
3. Beats: R waves of a green ECG trace in the strip's columns where one is drawn; otherwise
   gaps in the envelope (flow events, grouped into beats by the long gaps of systole).
4. One peak per beat, each kept in Finding.beats (its velocity and peak pixel; every beat's
   peak also in Finding.points, (min, max) in Finding.spread), combined as echo labs report
   them (ASE: Zoghbi 2017, Nagueh 2016): a jet's peak velocity (TR, AV Vmax) is the highest of
   the beats; mitral E and A are the mean of the beats, and E/A the ratio of those means
   (Finding.aggregation says which).

What the flow is (assumptions, stated because the image alone cannot prove them):

- The dominant side of the baseline is the one with the larger 95th-percentile envelope speed.
  Its direction comes from the calibration, not from the side: flow toward the transducer has
  positive velocity (drawn above the baseline, or below it on an inverted display, which the
  region's positive PhysicalDeltaY then says).
- CW, dominant flow away from the transducer (apical view): tricuspid regurgitation or aortic
  ejection. SeriesDescription / ImageComments keywords decide first (TR, TV, tricuspid → TR;
  AV, AS, aortic, LVOT → AV). Otherwise the shape decides: a TR jet is holosystolic, so its flow
  lasts at least 40 % of the beat; aortic ejection is shorter. Reported as "TR_Vmax" or
  "AV_Vmax", with the flag "flow_identified_by_shape" when no keyword decided.
- PW, dominant flow toward the transducer with two peaks per beat (early filling, then atrial):
  mitral inflow → "MV_E", "MV_A" and "MV_E_A" (mean E / mean A). When the dip between E
  and A stays above half the A peak the waves are fused and the findings carry the flag
  "EA_fused". A PW flow that is not biphasic, or runs away from the transducer, is not claimed
  as mitral.
- CW flow toward the transducer is not recognised (no finding, status not_applicable).

Units: every velocity is in cm/s (UCUM "cm/s", the unit of the region's calibration, also for
TR_Vmax, which clinicians often quote in m/s); values are signed as calibrated, so a TR Vmax is
negative on a display with flow away from the transducer below the baseline. "MV_E_A" is "1".
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import Clip, UltrasoundRegion
from ai.findings import Aggregation, Beat, Finding, PipelineResult, PipelineStatus, Provenance
from ai.model_source import ModelSource
from ai.pipelines import pipeline
from ai.regions import (
    DATA_CW,
    UNITS_SECONDS,
    UnitError,
    baseline_row,
    row_to_velocity,
    spectral_region,
)

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
PROVENANCE = Provenance(name="classical-doppler", version=VERSION)
FloatArray = npt.NDArray[np.float64]

# A pixel whose channels differ by more than this is colour (ECG trace, markers, text), not
# the grey spectrum.
CHROMA_LIMIT = 40
# Fallback time per column when the region has no time calibration (typical sweep speeds).
DEFAULT_SECONDS_PER_COLUMN = 0.005
TR_MIN_DUTY = 0.40

_TR_WORDS = re.compile(r"\b(TR|TV|TRICUSP\w*)\b", re.IGNORECASE)
_AV_WORDS = re.compile(r"\b(AV|AS|AORT\w*|LVOT)\b", re.IGNORECASE)


class DopplerError(ValueError):
    """The clip cannot be measured (no spectral region, no velocity calibration)."""


@dataclass(frozen=True)
class Strip:
    """The spectral strip of one frame as intensities, with its place in the source image."""

    intensity: FloatArray  # (rows, columns), colour removed
    region: UltrasoundRegion
    baseline: int  # row of zero velocity inside the strip (may lie outside it)
    seconds_per_column: float
    frame: int


@dataclass(frozen=True)
class Envelope:
    """Per strip column: the farthest signal row above and below the baseline (-1: none)."""

    above: npt.NDArray[np.int64]
    below: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Peak:
    column: int  # strip column
    row: float  # strip row of the envelope (sub-pixel)
    velocity: float  # cm/s, signed


def _check_calibration(region: UltrasoundRegion) -> None:
    try:
        row_to_velocity(region, region.min_y0)
    except UnitError as error:
        raise DopplerError(str(error)) from error


def extract_strip(
    clip: Clip, frame_index: int | None = None
) -> tuple[Strip, npt.NDArray[np.uint8]]:
    """The spectral strip of a frame (default: the last, the fullest sweep) and the RGB frame."""
    region = spectral_region(clip.regions)
    if region is None:
        raise DopplerError("no spectral Doppler region (RegionDataType 3 PW or 4 CW)")
    _check_calibration(region)
    index = len(clip) - 1 if frame_index is None else frame_index
    frame = clip.frames[index]
    rgb = frame[region.min_y0 : region.max_y1 + 1, region.min_x0 : region.max_x1 + 1]
    wide = rgb.astype(np.int16)
    chroma = wide.max(axis=2) - wide.min(axis=2)
    grey = rgb.astype(np.float64).mean(axis=2)
    grey[chroma > CHROMA_LIMIT] = 0.0
    if region.physical_units_x == UNITS_SECONDS and region.physical_delta_x != 0:
        seconds = abs(region.physical_delta_x)
    else:
        seconds = DEFAULT_SECONDS_PER_COLUMN
    strip = Strip(
        intensity=grey,
        region=region,
        baseline=baseline_row(region) - region.min_y0,
        seconds_per_column=seconds,
        frame=index,
    )
    return strip, frame


def signal_mask(intensity: FloatArray, baseline: int) -> npt.NDArray[np.bool_]:
    """Pixels that belong to the spectrum (see module docstring, step 2)."""
    flattened = np.clip(intensity - np.median(intensity, axis=1, keepdims=True), 0, 255)
    # Thresholds from a median-blurred copy (speckle cannot raise them); the mask itself from
    # the unblurred pixels, because blurring erodes the envelope's tips by a pixel or two.
    smooth = cv2.medianBlur(flattened.astype(np.uint8), 3).astype(np.float64)
    noise = float(np.percentile(smooth, 50))
    bright = float(np.percentile(smooth, 99.5))
    if bright - noise < 10:
        return np.zeros(intensity.shape, dtype=bool)
    mask = flattened > noise + 0.15 * (bright - noise)
    # The baseline line itself (its row-median may not vanish on a short strip).
    lo, hi = max(baseline - 1, 0), max(min(baseline + 2, mask.shape[0]), 0)
    mask[lo:hi] = False
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(0.1 * float(areas.max()), 20.0)
    result: npt.NDArray[np.bool_] = keep[labels]
    return result


def envelope(mask: npt.NDArray[np.bool_], baseline: int) -> Envelope:
    rows, columns = mask.shape
    above = np.full(columns, -1, dtype=np.int64)
    below = np.full(columns, -1, dtype=np.int64)
    top_part = mask[: max(min(baseline, rows), 0)]
    bottom_start = max(baseline + 1, 0)
    bottom_part = mask[bottom_start:]
    if top_part.shape[0]:
        has = top_part.any(axis=0)
        above[has] = np.argmax(top_part, axis=0)[has]  # first (highest) signal row
    if bottom_part.shape[0]:
        has = bottom_part.any(axis=0)
        last = bottom_part.shape[0] - 1 - np.argmax(bottom_part[::-1], axis=0)
        below[has] = (bottom_start + last)[has]
    return Envelope(above=above, below=below)


def _median_filter(values: FloatArray, width: int) -> FloatArray:
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    filtered: FloatArray = np.median(windows, axis=1)
    return filtered


def speed_profile(env: Envelope, baseline: int, side: str) -> FloatArray:
    """Distance in pixels of the envelope from the baseline per column, median-filtered.

    A pixel shows signal when its centre lies inside the envelope, so the envelope itself lies
    between the last lit centre and the next: half a pixel further on average.
    """
    rows = env.above if side == "above" else env.below
    distance = np.where(rows >= 0, np.abs(rows - baseline) + 0.5, 0.0).astype(np.float64)
    return _median_filter(distance, 3)


def ecg_r_columns(
    frame: npt.NDArray[np.uint8], region: UltrasoundRegion, seconds: float
) -> list[int]:
    """Strip columns of R waves from a green ECG trace drawn in or below the strip, if any.

    Only rows from the strip's top down are searched: the 2D image above a spectral strip may
    hold green marks of its own.
    """
    band = frame[region.min_y0 :, region.min_x0 : region.max_x1 + 1].astype(np.int16)
    red, green, blue = band[..., 0], band[..., 1], band[..., 2]
    trace = (green > 150) & (red < 120) & (blue < 150) & (green - np.maximum(red, blue) > 60)
    present = trace.any(axis=0)
    if present.mean() < 0.5:
        return []
    top = np.where(present, np.argmax(trace, axis=0), -1).astype(np.float64)
    columns = np.arange(top.size)
    height = -np.interp(columns, columns[present], top[present])  # up is positive
    level = float(np.median(height))
    span = float(height.max()) - level
    if span < 5:
        return []
    above = height > level + 0.6 * span
    min_gap = max(int(0.25 / seconds), 3)
    peaks: list[int] = []
    start = None
    for column in range(height.size + 1):
        inside = column < height.size and bool(above[column])
        if inside and start is None:
            start = column
        elif not inside and start is not None:
            best = start + int(np.argmax(height[start:column]))
            if not peaks or best - peaks[-1] >= min_gap:
                peaks.append(best)
            start = None
    return peaks


def flow_events(speed: FloatArray, seconds: float) -> list[tuple[int, int]]:
    """Runs of columns with flow, [start, stop), short dropouts bridged."""
    if speed.max() <= 0:
        return []
    active = speed > 0.15 * float(np.percentile(speed[speed > 0], 95))
    bridge = max(int(0.02 / seconds), 1)
    runs: list[tuple[int, int]] = []
    start = None
    for column in range(active.size + 1):
        on = column < active.size and bool(active[column])
        if on and start is None:
            start = column
        elif not on and start is not None:
            if runs and start - runs[-1][1] <= bridge:
                runs[-1] = (runs[-1][0], column)
            else:
                runs.append((start, column))
            start = None
    minimum = max(int(0.04 / seconds), 2)
    return [(a, b) for a, b in runs if b - a >= minimum]


def group_beats(events: list[tuple[int, int]], biphasic: bool) -> list[tuple[int, int]]:
    """Flow events → beats. For biphasic inflow the short gap (diastasis) joins E to A and the
    long gap (systole) separates beats; otherwise every event is a beat."""
    if not biphasic or len(events) < 2:
        return list(events)
    gaps = [events[i + 1][0] - events[i][1] for i in range(len(events) - 1)]
    if max(gaps) < 1.8 * max(min(gaps), 1):
        return list(events)  # no diastasis gaps: E and A fused in each event
    split = float(np.sqrt(max(min(gaps), 1) * max(gaps)))
    beats = [events[0]]
    for gap, event in zip(gaps, events[1:], strict=True):
        if gap < split:
            beats[-1] = (beats[-1][0], event[1])
        else:
            beats.append(event)
    return beats


def complete(beats: list[tuple[int, int]], columns: int) -> tuple[list[tuple[int, int]], bool]:
    """Beats that touch neither strip edge; all of them (flagged) if none is complete."""
    whole = [(a, b) for a, b in beats if a > 0 and b < columns]
    return (whole, False) if whole else (list(beats), True)


def _peak(strip: Strip, speed: FloatArray, side: str, span: tuple[int, int]) -> Peak:
    """The fastest column of a span; its row is on the flow's side of the baseline."""
    a, b = span
    column = a + int(np.argmax(speed[a:b]))
    distance = float(speed[column])
    row = strip.baseline - distance if side == "above" else strip.baseline + distance
    velocity = row_to_velocity(strip.region, row + strip.region.min_y0)
    return Peak(column=column, row=row, velocity=velocity)


def two_peaks(speed: FloatArray, span: tuple[int, int], seconds: float) -> tuple[int, int] | None:
    """Columns of the E and A maxima in a beat of biphasic inflow, or None if not biphasic."""
    a, b = span
    segment = speed[a:b]
    if segment.size < 5:
        return None
    maxima = [
        i
        for i in range(1, segment.size - 1)
        if segment[i] >= segment[i - 1] and segment[i] > segment[i + 1] and segment[i] > 0
    ]
    separation = max(int(0.06 / seconds), 2)
    best: tuple[int, int] | None = None
    best_score = 0.0
    for i, first in enumerate(maxima):
        for second in maxima[i + 1 :]:
            if second - first < separation:
                continue
            dip = float(segment[first:second].min())
            low = min(float(segment[first]), float(segment[second]))
            # A real E–A pair has a dip between the two peaks (at least 5 % of the lower one).
            if low - dip < 0.05 * low:
                continue
            score = low
            if score > best_score:
                best, best_score = (a + first, a + second), score
    return best


def combine(values: list[float], aggregation: Aggregation) -> float:
    """Beats combined: MAX is the fastest (largest |v|, sign kept), MEAN the mean."""
    if aggregation is Aggregation.MAX:
        return max(values, key=abs)
    if aggregation is Aggregation.MEAN:
        return float(np.mean(values))
    raise ValueError(f"beats are combined by max or mean here, not {aggregation}")


def _image_point(peak: Peak, strip: Strip) -> tuple[float, float]:
    return (float(peak.column + strip.region.min_x0), float(peak.row + strip.region.min_y0))


def _finding(
    name: str,
    peaks: list[Peak],
    strip: Strip,
    flags: tuple[str, ...],
    aggregation: Aggregation,
    phase: str | None = None,
) -> Finding:
    values = [p.velocity for p in peaks]
    beats = tuple(Beat(p.velocity, strip.frame, (_image_point(p, strip),)) for p in peaks)
    return Finding(
        name=name,
        value=combine(values, aggregation) if len(values) > 1 else values[0],
        unit="cm/s",
        provenance=PROVENANCE,
        frames=(strip.frame,),
        points=tuple(_image_point(p, strip) for p in peaks),
        cardiac_phase=phase,
        flags=flags,
        spread=(min(values), max(values)) if len(values) > 1 else None,
        beats=beats if len(beats) > 1 else (),
        aggregation=aggregation if len(values) > 1 else Aggregation.SINGLE,
    )


def header_text(clip: Clip) -> str:
    """The header text the flow keywords are looked for in (SeriesDescription, ImageComments)."""
    return " ".join(
        str(clip.metadata.get(name, "")) for name in ("SeriesDescription", "ImageComments")
    )


def keyword_flow(clip: Clip) -> str | None:
    """The flow the header names: "TR" or "AV" (TR words first), else None."""
    text = header_text(clip)
    if _TR_WORDS.search(text):
        return "TR"
    if _AV_WORDS.search(text):
        return "AV"
    return None


def _beats(
    strip: Strip, frame: npt.NDArray[np.uint8], speed: FloatArray, biphasic: bool
) -> tuple[list[tuple[int, int]], tuple[str, ...]]:
    r_columns = ecg_r_columns(frame, strip.region, strip.seconds_per_column)
    if len(r_columns) >= 2:
        return list(itertools.pairwise(r_columns)), ("beats_from_ecg",)
    events = flow_events(speed, strip.seconds_per_column)
    beats, partial = complete(group_beats(events, biphasic), speed.size)
    return beats, ("beats_from_envelope_gaps",) + (("partial_beats",) if partial else ())


def _duty(speed: FloatArray, seconds: float) -> float:
    """Median share of the onset-to-onset period during which flow lasts (TR is holosystolic)."""
    events = flow_events(speed, seconds)
    if len(events) < 2:
        return 0.0
    shares = [(a[1] - a[0]) / (b[0] - a[0]) for a, b in itertools.pairwise(events)]
    return float(np.median(shares))


@dataclass(frozen=True)
class _Traced:
    """A strip with its envelope on the dominant side of the baseline."""

    strip: Strip
    frame: npt.NDArray[np.uint8]
    side: str  # "above" or "below" the baseline
    speed: FloatArray  # envelope distance from the baseline per column, pixels
    flags: tuple[str, ...]

    @property
    def toward(self) -> bool:
        """Flow toward the transducer: positive velocity by the region's calibration."""
        step = -1.0 if self.side == "above" else 1.0
        return self.strip.region.physical_delta_y * step > 0

    def result(
        self, status: PipelineStatus, message: str = "", findings: tuple[Finding, ...] = ()
    ) -> PipelineResult:
        strip = self.strip
        sign = -1.0 if self.side == "above" else 1.0
        absolute = strip.baseline + strip.region.min_y0
        curve = tuple(float(row_to_velocity(strip.region, absolute + sign * d)) for d in self.speed)
        series = {f"envelope_{self.side}_cm_s": curve}
        return PipelineResult("doppler", status, findings=findings, message=message, series=series)


def _measure_cw(clip: Clip, traced: _Traced) -> PipelineResult:
    strip, speed = traced.strip, traced.speed
    if traced.toward:
        message = "CW flow toward the transducer: not recognised as TR or AV"
        return traced.result(PipelineStatus.NOT_APPLICABLE, message)
    beats, beat_flags = _beats(strip, traced.frame, speed, biphasic=False)
    peaks = [
        _peak(strip, speed, traced.side, beat)
        for beat in beats
        if speed[beat[0] : beat[1]].max() > 0
    ]
    if not peaks:
        return traced.result(PipelineStatus.FAILED, "no beat found in the CW spectrum")
    flow = keyword_flow(clip)
    shape_flags: tuple[str, ...] = ()
    if flow is None:
        flow = "TR" if _duty(speed, strip.seconds_per_column) >= TR_MIN_DUTY else "AV"
        shape_flags = ("flow_identified_by_shape",)
    flags = traced.flags + beat_flags + shape_flags
    finding = _finding(f"{flow}_Vmax", peaks, strip, flags, Aggregation.MAX)
    return traced.result(PipelineStatus.OK, findings=(finding,))


def _measure_pw(traced: _Traced) -> PipelineResult:
    strip, speed = traced.strip, traced.speed
    if not traced.toward:
        message = "PW flow away from the transducer: not recognised as mitral inflow"
        return traced.result(PipelineStatus.NOT_APPLICABLE, message)
    beats, beat_flags = _beats(strip, traced.frame, speed, biphasic=True)
    pairs = [two_peaks(speed, beat, strip.seconds_per_column) for beat in beats]
    found = [pair for pair in pairs if pair is not None]
    if not found:
        message = "PW flow has no E and A peaks: not recognised as mitral inflow"
        return traced.result(PipelineStatus.NOT_APPLICABLE, message)
    e_peaks = [_peak(strip, speed, traced.side, (e, e + 1)) for e, _ in found]
    a_peaks = [_peak(strip, speed, traced.side, (a, a + 1)) for _, a in found]
    flags = traced.flags + beat_flags
    # E and A fused (fast heart rate): the A peak rides on the E tail and reads high.
    if any(float(speed[e:a].min()) > 0.5 * float(speed[a]) for e, a in found):
        flags += ("EA_fused",)
    e = _finding("MV_E", e_peaks, strip, flags, Aggregation.MEAN, "diastole")
    a = _finding("MV_A", a_peaks, strip, flags, Aggregation.MEAN, "diastole")
    ratios = [ep.velocity / ap.velocity for ep, ap in zip(e_peaks, a_peaks, strict=True)]
    ratio = Finding(
        name="MV_E_A",
        value=e.value / a.value,  # of the reported E and A, so the three agree
        unit="1",
        provenance=PROVENANCE,
        frames=(strip.frame,),
        cardiac_phase="diastole",
        flags=flags,
        spread=(min(ratios), max(ratios)) if len(ratios) > 1 else None,
        beats=tuple(
            Beat(r, strip.frame, (_image_point(ep, strip), _image_point(ap, strip)))
            for r, ep, ap in zip(ratios, e_peaks, a_peaks, strict=True)
        ),
        aggregation=Aggregation.RATIO,
    )
    findings = (e, a, ratio)
    return traced.result(PipelineStatus.OK, findings=findings)


def _trace(clip: Clip, frame_index: int | None) -> _Traced | PipelineResult:
    """The strip's envelope on its dominant side, or the result saying why there is none."""
    try:
        strip, frame = extract_strip(clip, frame_index)
    except DopplerError as error:
        return PipelineResult("doppler", PipelineStatus.NOT_APPLICABLE, message=str(error))
    env = envelope(signal_mask(strip.intensity, strip.baseline), strip.baseline)
    profiles = {side: speed_profile(env, strip.baseline, side) for side in ("above", "below")}
    strength = {side: float(np.percentile(speed, 95)) for side, speed in profiles.items()}
    side = max(strength, key=lambda s: strength[s])
    if strength[side] <= 0:
        return PipelineResult("doppler", PipelineStatus.FAILED, message="no spectrum in the strip")
    flags = () if strip.region.physical_units_x == UNITS_SECONDS else ("no_time_calibration",)
    return _Traced(strip, frame, side, profiles[side], flags)


def beat_spans(
    clip: Clip, frame_index: int, biphasic: bool
) -> tuple[list[tuple[int, int]], tuple[str, ...]]:
    """The beats of a frame's spectrum as image column spans [start, stop), found as the
    engine finds them (ECG R waves, else gaps in the envelope), and the flags saying how.
    No span when the strip has no spectrum or no calibration."""
    traced = _trace(clip, frame_index)
    if isinstance(traced, PipelineResult):
        return [], ()
    beats, flags = _beats(traced.strip, traced.frame, traced.speed, biphasic)
    x0 = traced.strip.region.min_x0
    return [(a + x0, b + x0) for a, b in beats if b > a], flags


def measure(clip: Clip, frame_index: int | None = None) -> PipelineResult:
    """Run the engine on a clip; not_applicable (with the reason) when it cannot measure."""
    traced = _trace(clip, frame_index)
    if isinstance(traced, PipelineResult):
        return traced
    strip = traced.strip
    cw = strip.region.data_type == DATA_CW
    result = _measure_cw(clip, traced) if cw else _measure_pw(traced)
    logger.info(
        "doppler: %s %s",
        result.status,
        ", ".join(f"{f.name}={f.value:.2f}" for f in result.findings),
        extra={"sop_instance_uid": clip.sop_instance_uid},
    )
    return result


@pipeline("doppler")
def doppler_pipeline(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """The registered entry point; the classical engine needs no model store."""
    del models
    return measure(clip)
