"""PLAX linear measurements with an EchoNet-LVH keypoint model: IVSd, LVIDd, LVPWd, LVIDs.

Reference behaviour (echonet/lvh; docs/METHODS.md, "PLAX"): frames in OpenCV's BGR order,
centre-cropped to 4:3 with the lab's rounding (ai.models.preprocess.crop_window), resized to
640×480 (INTER_LINEAR), /255, no mean/std; deeplabv3_resnet50 with 4 sigmoid heat maps, one per
endpoint; each map thresholded at 0.3 and its point taken as the intensity-weighted centroid;
LVPW, LVID, IVS are the distances between consecutive points (pt0–pt1, pt1–pt2, pt2–pt3).
End-diastole = peaks of the LVID curve smoothed with [1,2,3,2,1] at least 25 frames apart,
end-systole = troughs, the first and last extremum dropped when the curve has both kinds.
"bad_angle": a bend of more than 30° between consecutive segments, the angles measured in the
model's pixel grid as the reference does (heading arctan2(dx, dy), differences wrapped to
±180°). The reference stops at pixels of the resized frame; here points are mapped back
through the resize and crop to source pixels and to cm with the 2D region's PhysicalDeltaX/Y.

Frame choice (CPU cost): one 640×480 frame costs about 2.7 s on two cores, so running every
frame at full size makes a 60-frame clip take minutes. The pipeline therefore
1. scans the clip at half the model's resolution (320×240, ~4× cheaper) on every second frame
   to get the LVID curve, its peaks (ED) and troughs (ES) and the per-frame series;
2. runs the full 640×480 input only on those ED and ES frames, and reports the ED values as
   the median over beats (LVIDs: median over the ES frames).
PlaxOptions(scan_scale=1.0, scan_stride=1) reproduces the reference exactly (every frame at
full size, one pass). When the coarse scan finds no extremum (clip shorter than about a beat),
the frame of largest (ED) or smallest (ES) LVID stands in and the findings carry the flag
"phase_from_extreme_frame". Beats found by the scan are in the series (ED_frames, ES_frames),
where the clip's EchoNet-Measurements models take them (ai.pipelines.measurements_2d).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from ai.clip import Clip, UltrasoundRegion
from ai.findings import Finding, PipelineResult, PipelineStatus, Provenance
from ai.model_source import ModelSource
from ai.models.loader import CheckpointError, LoadedModel
from ai.models.preprocess import Geometry, crop_and_scale, crop_window, to_tensor
from ai.models.registry import ModelSpec
from ai.models.signal import fill_gaps, peaks_and_troughs, smooth
from ai.models.store import NotInstalled
from ai.pipelines import pipeline

logger = logging.getLogger(__name__)

MODEL = "echonet-lvh-plax"
NAME = "plax"
SEGMENTS = ("LVPW", "LVID", "IVS")  # between points (0,1), (1,2), (2,3)
UNITS_CM = 3  # PhysicalUnits code for cm (PS3.3 C.8.5.5.1.15)
SPATIAL_2D = 1

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PlaxOptions:
    threshold: float = 0.3  # heat-map values below are ignored (reference)
    peak_distance: int = 25  # frames between two ED (or two ES) (reference)
    angle_limit_deg: float = 30.0  # segments bending more than this are flagged (reference)
    scan_scale: float = 0.5  # coarse pass resolution relative to the model input
    scan_stride: int = 2  # coarse pass uses every n-th frame


# --- preprocess ---------------------------------------------------------------------------


def preprocess(
    frames: npt.NDArray[np.uint8], spec: ModelSpec, width: int, height: int
) -> tuple[torch.Tensor, Geometry]:
    """(N, rows, columns, 3) RGB → (N, 3, height, width) BGR /255 tensor and its geometry."""
    geometry = crop_window(frames.shape[1], frames.shape[2], width, height)
    resized = np.stack([crop_and_scale(frame, geometry) for frame in frames])
    return to_tensor(resized, spec), geometry


# --- predict ------------------------------------------------------------------------------


def predict(model: LoadedModel, batch: torch.Tensor) -> npt.NDArray[np.float32]:
    """Sigmoid heat maps (N, 4, H, W)."""
    with torch.inference_mode():
        logits = model.run(batch)
        maps: npt.NDArray[np.float32] = torch.sigmoid(logits).float().cpu().numpy()
    return maps


# --- postprocess --------------------------------------------------------------------------


def heatmap_points(heatmaps: npt.NDArray[np.floating], threshold: float = 0.3) -> FloatArray:
    """(N, C, H, W) → (N, C, 2) (x, y): intensity-weighted centroid of values ≥ threshold.

    A channel with nothing above the threshold gives NaN (no point, no guess).
    """
    maps = np.where(heatmaps >= threshold, heatmaps, 0.0).astype(np.float64)
    height, width = maps.shape[-2:]
    total = maps.sum(axis=(-2, -1))
    xs = (maps.sum(axis=-2) * np.arange(width)).sum(axis=-1)
    ys = (maps.sum(axis=-1) * np.arange(height)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        points = np.stack([xs / total, ys / total], axis=-1)
    points[total <= 0] = np.nan
    return points


def segment_lengths(points: FloatArray, delta_x: float, delta_y: float) -> FloatArray:
    """(N, 4, 2) source-pixel points → (N, 3) lengths LVPW, LVID, IVS in the deltas' unit."""
    steps = np.diff(points, axis=1)
    return np.sqrt((steps[..., 0] * abs(delta_x)) ** 2 + (steps[..., 1] * abs(delta_y)) ** 2)


def segment_angles(points: FloatArray) -> FloatArray:
    """(N, 4, 2) (x, y) → (N, 2) degrees between consecutive segments, in [-180, 180].

    EchoNet-LVH's convention: a segment's heading is arctan2(dx, dy), measured from the +y axis
    (down the image) towards +x, so a bend that is clockwise on screen is negative; a turn
    beyond ±180° is wrapped once by 360°.
    """
    steps = np.diff(points, axis=1)
    heading = np.arctan2(steps[..., 0], steps[..., 1])
    turn = np.degrees(np.diff(heading, axis=1))
    turn[turn > 180.0] -= 360.0
    turn[turn < -180.0] += 360.0
    return turn


def cardiac_phases(lvid: FloatArray, distance: int = 25) -> tuple[list[int], list[int]]:
    """(ED, ES) sample indices: peaks and troughs of the smoothed curve, ends dropped."""
    return peaks_and_troughs(smooth(fill_gaps(lvid)), distance)


def calibrated_regions(regions: Sequence[UltrasoundRegion]) -> list[UltrasoundRegion]:
    """The 2D regions calibrated in cm on both axes: where a length can be measured."""
    return [
        r
        for r in regions
        if r.spatial_format == SPATIAL_2D
        and r.physical_units_x == UNITS_CM
        and r.physical_units_y == UNITS_CM
        and r.physical_delta_x != 0
        and r.physical_delta_y != 0
    ]


def calibration_region(
    regions: Sequence[UltrasoundRegion], points: FloatArray
) -> tuple[UltrasoundRegion | None, tuple[str, ...]]:
    """The 2D region in cm holding the points (or the only one, flagged)."""
    candidates = calibrated_regions(regions)
    if not candidates:
        return None, ()
    valid = points[np.all(np.isfinite(points), axis=-1)]
    if len(valid):
        x, y = np.median(valid, axis=0)
        for region in candidates:
            if region.min_x0 <= x <= region.max_x1 and region.min_y0 <= y <= region.max_y1:
                return region, ()
    if len(candidates) == 1:
        return candidates[0], ("points_outside_region",)
    return None, ()


# --- the pipeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class FramePoints:
    frames: list[int]
    points: FloatArray  # (N, 4, 2) source pixels

    def pick(self, frames: Sequence[int]) -> FramePoints:
        return FramePoints(list(frames), self.points[[self.frames.index(f) for f in frames]])


def measure_frames(
    clip: Clip,
    model: LoadedModel,
    indices: Sequence[int],
    scale: float,
    batch_size: int,
    threshold: float,
) -> FramePoints:
    """Run the model on the given frames at scale × its input size; points in source pixels."""
    spec = model.spec
    width = max(16, round(spec.input_width * scale))
    height = max(16, round(spec.input_height * scale))
    found: list[FloatArray] = []
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        frames = np.stack(list(clip.iter_frames(chunk)))
        batch, geometry = preprocess(frames, spec, width, height)
        found.append(geometry.to_source(heatmap_points(predict(model, batch), threshold)))
    points = np.concatenate(found) if found else np.empty((0, 4, 2))
    return FramePoints(list(indices), points)


@dataclass(frozen=True)
class Measuring:
    """What every finding of one clip is measured with."""

    region: UltrasoundRegion  # calibrates lengths
    grid: Geometry  # the model's full-size window: angles are measured in its pixels
    provenance: Provenance
    angle_limit: float


def _finding(
    name: str,
    segment: int,
    result: FramePoints,
    phase: str,
    flags: tuple[str, ...],
    how: Measuring,
) -> Finding | None:
    region = how.region
    lengths = segment_lengths(result.points, region.physical_delta_x, region.physical_delta_y)
    values = lengths[:, segment]
    ok = np.isfinite(values)
    if not ok.any():
        return None
    frames = tuple(f for f, good in zip(result.frames, ok, strict=True) if good)
    chosen = result.points[ok]
    pts = tuple((float(p[i, 0]), float(p[i, 1])) for p in chosen for i in (segment, segment + 1))
    # In the model's grid, as the reference: the resize need not scale both axes alike.
    angles = segment_angles(how.grid.to_model(chosen))
    bent = bool(np.any(np.abs(angles) > how.angle_limit))
    good_values = values[ok]
    return Finding(
        name=name,
        value=float(np.median(good_values)),
        unit="cm",
        provenance=how.provenance,
        frames=frames,
        points=pts,
        cardiac_phase=phase,
        flags=(*flags, "bad_angle") if bent else flags,
        spread=(float(good_values.min()), float(good_values.max()))
        if len(good_values) > 1
        else None,
    )


def analyse(
    clip: Clip, model: LoadedModel, options: PlaxOptions, batch_size: int
) -> PipelineResult:
    scan_indices = list(range(0, len(clip), max(1, options.scan_stride)))
    scan = measure_frames(
        clip, model, scan_indices, options.scan_scale, batch_size, options.threshold
    )
    region, region_flags = calibration_region(clip.regions, scan.points)
    if region is None:
        return PipelineResult(
            NAME,
            PipelineStatus.NOT_APPLICABLE,
            message="no 2D ultrasound region calibrated in cm: lengths cannot be reported",
        )
    lengths = segment_lengths(scan.points, region.physical_delta_x, region.physical_delta_y)
    lvid = lengths[:, 1]
    distance = max(1, round(options.peak_distance / max(1, options.scan_stride)))
    ed_at, es_at = cardiac_phases(lvid, distance)
    finite = fill_gaps(lvid)
    if not np.isfinite(finite).any():
        return PipelineResult(
            NAME, PipelineStatus.FAILED, message="no keypoint above threshold in any frame"
        )
    # Fewer than about two beats leave a phase without an interior extremum: the frame of
    # largest (ED) or smallest (ES) LVID stands in, and the findings say so.
    ed_flags = es_flags = region_flags
    beats_found = bool(ed_at) and bool(es_at)
    if not ed_at:
        ed_at, ed_flags = [int(np.argmax(finite))], (*region_flags, "phase_from_extreme_frame")
    if not es_at:
        es_at, es_flags = [int(np.argmin(finite))], (*region_flags, "phase_from_extreme_frame")
    ed_frames = [scan.frames[i] for i in ed_at]
    es_frames = [scan.frames[i] for i in es_at]
    if options.scan_scale == 1.0:
        full = scan
    else:
        full = measure_frames(
            clip, model, sorted(set(ed_frames + es_frames)), 1.0, batch_size, options.threshold
        )
    ed, es = full.pick(ed_frames), full.pick(es_frames)
    grid = crop_window(clip.rows, clip.columns, model.spec.input_width, model.spec.input_height)
    how = Measuring(region, grid, model.provenance, options.angle_limit_deg)
    candidates = [
        _finding("IVSd", 2, ed, "diastole", ed_flags, how),
        _finding("LVIDd", 1, ed, "diastole", ed_flags, how),
        _finding("LVPWd", 0, ed, "diastole", ed_flags, how),
        _finding("LVIDs", 1, es, "systole", es_flags, how),
    ]
    findings = tuple(f for f in candidates if f is not None)
    series = {"frame": tuple(float(f) for f in scan.frames)}
    for column, name in enumerate(SEGMENTS):
        series[f"{name}_cm"] = tuple(float(v) for v in lengths[:, column])
    if beats_found:  # the phases a later pipeline of the clip may measure on (measurements_2d)
        series["ED_frames"] = tuple(float(f) for f in ed_frames)
        series["ES_frames"] = tuple(float(f) for f in es_frames)
    status = PipelineStatus.OK if findings else PipelineStatus.FAILED
    message = "" if findings else "no keypoint above threshold on the ED/ES frames"
    return PipelineResult(NAME, status, findings, message, series)


@pipeline("plax")
def run_plax(
    clip: Clip,
    models: ModelSource | None,
    options: PlaxOptions | None = None,
    *,
    earlier: Sequence[PipelineResult] = (),
) -> PipelineResult:
    """IVSd, LVIDd, LVPWd, LVIDs (cm) and per-frame curves from an EchoNet-LVH PLAX model."""
    if models is None:
        return PipelineResult(
            NAME,
            PipelineStatus.MODEL_NOT_INSTALLED,
            message=f"no model store configured; install {MODEL} with: "
            f"echo-node models import PATH --name {MODEL}",
        )
    try:
        loaded = models.get(MODEL)
    except CheckpointError as exc:  # an installed file that does not fit: say so, no value
        return PipelineResult(NAME, PipelineStatus.FAILED, message=str(exc))
    if isinstance(loaded, NotInstalled):
        return PipelineResult(NAME, PipelineStatus.MODEL_NOT_INSTALLED, message=loaded.message)
    if len(clip) == 0:
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message="clip has no frames")
    logger.info("plax on %d frames", len(clip), extra={"sop_instance_uid": clip.sop_instance_uid})
    return analyse(clip, loaded, options or PlaxOptions(), models.batch_size)
