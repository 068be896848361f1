"""EchoNet-Measurements 2D linear measurements: PLAX (IVS, LVID, LVPW, aortic root, ascending
aorta, LA) and A4C (RV base), one deeplabv3_resnet50 with two heat maps (one per caliper end)
per measurement.

Reference behaviour (echonet/measurements `Measurement/inference_2D_image.py` and `utils.py`,
see docs/METHODS.md, "Measurements 2D"): RGB frames (YBR converted; ai.decode hands RGB) resized
to 640×480 (the script refuses a source that is not 3:4), /255, no mean/std; sigmoid; each
point is the intensity-weighted centroid of its whole map (no threshold). The issue text says
"points by argmax"; the reference code takes the weighted centroid, and that is what is done
here (ai.pipelines.plax.heatmap_points with threshold 0). The reference casts points to int
before the distance; here they stay sub-pixel. Lengths: the points are mapped back through the
resize (and crop) to source pixels and scaled by |PhysicalDeltaX/Y| of the 2D region holding
them. Phase (reference, LVID only): the diameter curve low-passed in the Fourier domain at
140 bpm, maxima = end-diastole, minima = end-systole, 25 frames apart, first and last extremum
dropped. The reference assumes 30 frames/s for the cutoff; here the clip's frame time is used
(30 when the header has none).

A source that is not 3:4 is centre-cropped to 3:4 first (the lab's crop_and_scale, as the LVH
pipeline does) instead of being refused, and its findings carry "source_not_3_4_cropped".

Frame choice (CPU cost): one 480×640 frame costs about 2.5 s per model on two cores (measured
2.46 s, 0.61 s at 240×320), and a PLAX clip has six of these models, so every model on every
frame would take minutes per clip. The pipeline therefore
1. scans the clip once with the phase model only (PLAX: LVID, whose curve is the reference's
   phase signal; A4C: RV base, the only model, largest at end-diastole) at half size on every
   second frame, giving the ED/ES frames and the per-frame curve;
2. runs each installed model at full size on at most `max_beats` ED frames (ES frames for LVIDs
   and LA) and reports the median over those beats.
A 60-frame PLAX clip with all six models then costs about 30 × 0.6 s (scan) + 21 × 2.5 s
(3 ED frames each for IVS, LVPW, aortic root, aorta; 3 ED + 3 ES for LVID; 3 ES for LA) ≈ 70 s,
instead of 60 × 6 × 2.5 s = 15 minutes for every frame of every model.
Measurements2DOptions(scan_scale=1.0, scan_stride=1, share_phases=False) scans every frame at
full size, as the reference does, and reuses that pass for the phase model's own values.

One end-diastole per clip: where the view's own pipeline ran first on the clip and found its
beats (PLAX: EchoNet-LVH's LVID curve, ai.pipelines.plax; A4C: the LV area of EchoNet-Dynamic's
segmentation, ai.pipelines.a4c; their series ED_frames/ES_frames), step 1 is skipped and the
models measure on those frames, flagged "phase_from_echonet_lvh" / "phase_from_lv_area". Every
dimension of the clip is then read at the same end-diastole, and the clip is scanned once, not
twice (docs/METHODS.md, "One end-diastole per clip").

Measured once: a value an earlier pipeline already gave on the clip (PLAX: EchoNet-LVH's IVSd,
LVIDd, LVIDs and LVPWd) is not measured again, so on a PLAX clip with EchoNet-LVH the IVS, LVID
and LVPW models do not run (on a clip with two beats, eight 480×640 passes: 13 s on two cores).
The report would print only one of the two values anyway, EchoNet-LVH's when both are clean
(docs/REPORTING.md), and LV mass and RWT are then calculated from the walls and cavity of one
model on one set of frames. The result's message names what was left to the earlier pipeline.
Measurements2DOptions(remeasure=True) measures them again (both then show in `jobs show`).

Without the phase model (e.g. only IVS installed), or when its curve gives nothing, each model
runs on `fallback_frames` evenly spaced frames and reports the extreme its quantity takes at
its phase (walls and aorta thinnest at end-diastole, LVID and RV largest, LVIDs smallest, LA
largest at end-systole), flagged "no_beats_found". A clip too short for an interior extremum
uses the curve's extreme frame, flagged "phase_from_extreme_frame".

PA (PSAX) and IVC (subcostal) models exist in the registry but no view here routes to them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ai.clip import Clip, UltrasoundRegion
from ai.findings import Finding, PipelineResult, PipelineStatus
from ai.model_source import ModelSource
from ai.models.loader import CheckpointError, LoadedModel
from ai.models.preprocess import crop_window
from ai.models.signal import fill_gaps, lowpass, peaks_and_troughs
from ai.models.store import NotInstalled
from ai.pipelines import pipeline
from ai.pipelines.plax import (
    FramePoints,
    calibrated_regions,
    calibration_region,
    measure_frames,
    segment_lengths,
)
from ai.sector import sector_mask

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
DEFAULT_FPS = 30.0  # the reference's assumption when the clip has no frame time


@dataclass(frozen=True)
class Target:
    """One reported value: which model measures it, at which phase, and which extreme of its
    curve that phase is (used only when no beat is found)."""

    model: str
    finding: str
    phase: str  # "diastole" (end-diastolic frames) or "systole" (end-systolic frames)
    extreme: str  # "max" or "min"


@dataclass(frozen=True)
class ViewModels:
    pipeline: str
    targets: tuple[Target, ...]
    phase_model: str  # its diameter is largest at end-diastole and smallest at end-systole
    series_name: str
    # The view's own pipeline: where it found ED and ES on the clip (series ED_frames and
    # ES_frames), this one measures on them (flagged phase_flag) instead of scanning.
    phase_source: str
    phase_flag: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.model for t in self.targets))


def _m(task: str) -> str:
    return f"echonet-measurements-{task}"


PLAX = ViewModels(
    "measurements_2d_plax",
    (
        Target(_m("ivs"), "IVSd", "diastole", "min"),
        Target(_m("lvid"), "LVIDd", "diastole", "max"),
        Target(_m("lvid"), "LVIDs", "systole", "min"),
        Target(_m("lvpw"), "LVPWd", "diastole", "min"),
        Target(_m("aortic_root"), "AoRoot", "diastole", "min"),
        Target(_m("aorta"), "AoAsc", "diastole", "min"),
        Target(_m("la"), "LAd", "systole", "max"),
    ),
    _m("lvid"),
    "LVID_cm",
    "plax",  # EchoNet-LVH's LVID curve
    "phase_from_echonet_lvh",
)
A4C = ViewModels(
    "measurements_2d_a4c",
    (Target(_m("rv_base"), "RVbase", "diastole", "max"),),
    _m("rv_base"),
    "RVbase_cm",
    "a4c",  # EchoNet-Dynamic's LV area: end-diastole is the largest LV
    "phase_from_lv_area",
)


@dataclass(frozen=True)
class Measurements2DOptions:
    scan_scale: float = 0.5  # phase scan resolution relative to the model input
    scan_stride: int = 2  # phase scan uses every n-th frame
    peak_distance: int = 25  # frames between two ED (or two ES) (reference)
    max_bpm: float = 140.0  # low-pass cutoff (reference)
    max_beats: int = 3  # ED (and ES) frames each model runs on at full size
    fallback_frames: int = 6  # frames each model runs on when no beat is found
    share_phases: bool = True  # measure on the ED/ES the view's own pipeline found (see doc)
    remeasure: bool = False  # measure again what an earlier pipeline measured (see doc)


@dataclass(frozen=True)
class Phases:
    ed: tuple[int, ...]
    es: tuple[int, ...]
    flags: tuple[str, ...] = ()
    series: dict[str, tuple[float, ...]] = field(default_factory=dict)
    scan: FramePoints | None = None  # the phase model's points, when scanned at full size

    @property
    def found(self) -> bool:
        return "no_beats_found" not in self.flags


# --- phase --------------------------------------------------------------------------------


def diameters(points: FloatArray, regions: Sequence[UltrasoundRegion]) -> FloatArray:
    """(N, 2, 2) source-pixel caliper ends → (N,) lengths in cm (pixels without a region)."""
    region, _ = calibration_region(regions, points)
    dx, dy = (region.physical_delta_x, region.physical_delta_y) if region else (1.0, 1.0)
    lengths: FloatArray = segment_lengths(points, dx, dy)[:, 0]
    return lengths


def phase_frames(curve: FloatArray, fps: float, options: Measurements2DOptions) -> Phases:
    """ED/ES sample indices of a diameter curve sampled at `fps` (reference rule)."""
    filled = fill_gaps(curve)
    if not np.isfinite(filled).any():
        return Phases((), (), ("no_beats_found",))
    smooth = lowpass(filled, fps, options.max_bpm)
    distance = max(1, round(options.peak_distance / max(1, options.scan_stride)))
    ed, es = peaks_and_troughs(smooth, distance)
    flags: tuple[str, ...] = ()
    if not ed or not es:
        flags = ("phase_from_extreme_frame",)
        ed = ed or [int(np.argmax(smooth))]
        es = es or [int(np.argmin(smooth))]
    return Phases(tuple(ed[: options.max_beats]), tuple(es[: options.max_beats]), flags)


def shared_phases(
    earlier: Sequence[PipelineResult], view: ViewModels, options: Measurements2DOptions
) -> Phases | None:
    """The ED/ES frames the view's own pipeline found on this clip, or None when it did not
    run, failed or found no beat (then the phase model scans the clip itself)."""
    for result in earlier:
        if result.pipeline != view.phase_source or result.status is not PipelineStatus.OK:
            continue
        ed, es = result.series.get("ED_frames", ()), result.series.get("ES_frames", ())
        if ed and es:
            return Phases(
                tuple(int(f) for f in ed[: options.max_beats]),
                tuple(int(f) for f in es[: options.max_beats]),
                (view.phase_flag,),
            )
    return None


def measured_before(earlier: Sequence[PipelineResult]) -> dict[str, str]:
    """Each value earlier pipelines gave on this clip → the first pipeline that gave it."""
    given: dict[str, str] = {}
    for result in earlier:
        if result.status is PipelineStatus.OK:
            for finding in result.findings:
                given.setdefault(finding.name, result.pipeline)
    return given


def find_phases(
    clip: Clip,
    model: LoadedModel | None,
    options: Measurements2DOptions,
    batch_size: int,
    series_name: str = "diameter_cm",
) -> Phases:
    """ED/ES source frames from one cheap pass of the phase model (see module doc)."""
    if model is None:
        count = min(len(clip), options.fallback_frames)
        frames = tuple(sorted({round(i) for i in np.linspace(0, len(clip) - 1, count)}))
        return Phases(frames, frames, ("no_beats_found",))
    stride = max(1, options.scan_stride)
    scan = measure_frames(
        clip, model, range(0, len(clip), stride), options.scan_scale, batch_size, 0.0
    )
    curve = diameters(scan.points, clip.regions)
    fps = 1000.0 / clip.frame_time_ms if clip.frame_time_ms else DEFAULT_FPS
    found = phase_frames(curve, fps / stride, options)
    if not found.found:
        fallback = find_phases(clip, None, options, batch_size)
        return Phases(fallback.ed, fallback.es, fallback.flags)
    series = {
        "frame": tuple(float(f) for f in scan.frames),
        series_name: tuple(float(v) for v in curve),
    }
    return Phases(
        tuple(scan.frames[i] for i in found.ed),
        tuple(scan.frames[i] for i in found.es),
        found.flags,
        series,
        scan if options.scan_scale == 1.0 else None,
    )


# --- one finding --------------------------------------------------------------------------


def _outside_sector(points: FloatArray, mask: npt.NDArray[np.bool_] | None) -> bool:
    if mask is None:
        return False
    xs = np.round(points[..., 0]).astype(int)
    ys = np.round(points[..., 1]).astype(int)
    inside = (xs >= 0) & (ys >= 0) & (xs < mask.shape[1]) & (ys < mask.shape[0])
    if not inside.all():
        return True
    return not bool(mask[ys, xs].all())


def make_finding(
    target: Target,
    measured: FramePoints,
    clip: Clip,
    model: LoadedModel,
    flags: tuple[str, ...],
    extreme_only: bool,
    mask: npt.NDArray[np.bool_] | None = None,
) -> Finding | None:
    """The target's value from its frames' points, or None when no length can be made."""
    ok = np.all(np.isfinite(measured.points), axis=(-2, -1))
    if not ok.any():
        return None
    points = measured.points[ok]
    frames = [f for f, good in zip(measured.frames, ok, strict=True) if good]
    region, region_flags = calibration_region(clip.regions, points)
    if region is None:
        return None
    lengths = segment_lengths(points, region.physical_delta_x, region.physical_delta_y)[:, 0]
    if extreme_only:  # no phase known: the frame where the quantity takes its phase's extreme
        pick = int(np.argmax(lengths) if target.extreme == "max" else np.argmin(lengths))
        points, lengths, frames = points[pick : pick + 1], lengths[pick : pick + 1], [frames[pick]]
    extra = list(region_flags)
    inside = [
        region.min_x0 <= x <= region.max_x1 and region.min_y0 <= y <= region.max_y1
        for x, y in points.reshape(-1, 2)
    ]
    if not all(inside) and "points_outside_region" not in extra:
        extra.append("points_outside_region")
    if _outside_sector(points, mask):
        extra.append("points_outside_sector")
    return Finding(
        name=target.finding,
        value=float(np.median(lengths)),
        unit="cm",
        provenance=model.provenance,
        frames=tuple(frames),
        points=tuple((float(x), float(y)) for x, y in points.reshape(-1, 2)),
        cardiac_phase=target.phase,
        flags=(*flags, *extra),
        spread=(float(lengths.min()), float(lengths.max())) if len(lengths) > 1 else None,
    )


# --- the pipeline -------------------------------------------------------------------------


def analyse(
    clip: Clip,
    view: ViewModels,
    loaded: dict[str, LoadedModel],
    options: Measurements2DOptions,
    batch_size: int,
    earlier: Sequence[PipelineResult] = (),
    done: Collection[str] = (),
) -> tuple[list[Finding], dict[str, tuple[float, ...]]]:
    """Findings of the loaded models of a view but those named in `done`, and the phase
    model's per-frame curve (none when the phases came from the view's own pipeline)."""
    phases = shared_phases(earlier, view, options) if options.share_phases else None
    if phases is None:
        phases = find_phases(
            clip, loaded.get(view.phase_model), options, batch_size, view.series_name
        )
    spec = next(iter(loaded.values())).spec
    geometry = crop_window(clip.rows, clip.columns, spec.input_width, spec.input_height)
    cropped = geometry.width != clip.columns or geometry.height != clip.rows
    flags = (*phases.flags, *(("source_not_3_4_cropped",) if cropped else ()))
    mask = sector_mask(clip) if len(clip) else None
    findings: list[Finding] = []
    for name, model in loaded.items():
        targets = [t for t in view.targets if t.model == name and t.finding not in done]
        if not targets:  # the model may still have been the phase model above
            continue
        wanted = sorted(
            {f for t in targets for f in (phases.ed if t.phase == "diastole" else phases.es)}
        )
        scan = phases.scan if name == view.phase_model else None
        if scan is not None and set(wanted) <= set(scan.frames):
            measured = scan
        else:
            measured = measure_frames(clip, model, wanted, 1.0, batch_size, 0.0)
        at = {frame: i for i, frame in enumerate(measured.frames)}
        for target in targets:
            frames = list(phases.ed if target.phase == "diastole" else phases.es)
            chosen = FramePoints(frames, measured.points[[at[f] for f in frames]])
            finding = make_finding(target, chosen, clip, model, flags, not phases.found, mask)
            if finding is not None:
                findings.append(finding)
    return findings, phases.series


def _install_commands(names: Sequence[str]) -> str:
    return "; ".join(f"echo-node models import PATH --name {name}" for name in names)


def run_view(
    clip: Clip,
    models: ModelSource | None,
    view: ViewModels,
    options: Measurements2DOptions | None = None,
    earlier: Sequence[PipelineResult] = (),
) -> PipelineResult:
    """Run the installed models of a view; say which are missing (see module doc)."""
    if models is None:
        return PipelineResult(
            view.pipeline,
            PipelineStatus.MODEL_NOT_INSTALLED,
            message="no model store configured; install the EchoNet-Measurements 2D models "
            f"with: {_install_commands(view.models)}",
        )
    loaded: dict[str, LoadedModel] = {}
    missing: list[str] = []
    broken: list[str] = []
    for name in view.models:
        try:
            got = models.get(name)
        except CheckpointError as exc:  # an installed file that does not fit: say so
            broken.append(str(exc))
            continue
        if isinstance(got, NotInstalled):
            missing.append(name)
        else:
            loaded[name] = got
    not_installed = (
        f"not installed: {', '.join(missing)}; install with: {_install_commands(missing)}"
        if missing
        else ""
    )
    notes = " | ".join(filter(None, [not_installed, *broken]))
    if not loaded:
        status = PipelineStatus.FAILED if broken else PipelineStatus.MODEL_NOT_INSTALLED
        return PipelineResult(view.pipeline, status, message=notes)
    if len(clip) == 0:
        return PipelineResult(view.pipeline, PipelineStatus.NOT_APPLICABLE, message="no frames")
    if not calibrated_regions(clip.regions):
        return PipelineResult(
            view.pipeline,
            PipelineStatus.NOT_APPLICABLE,
            message="no 2D ultrasound region calibrated in cm: lengths cannot be reported",
        )
    logger.info(
        "%s on %d frames, models %s",
        view.pipeline,
        len(clip),
        ", ".join(loaded),
        extra={"sop_instance_uid": clip.sop_instance_uid},
    )
    options = options or Measurements2DOptions()
    done = {} if options.remeasure else measured_before(earlier)
    mine = [t.finding for t in view.targets if t.model in loaded]
    left = [name for name in mine if name in done]
    if left:
        by = ", ".join(dict.fromkeys(done[n] for n in left))
        notes = " | ".join(filter(None, [f"{', '.join(left)} measured by {by}, not again", notes]))
        if len(left) == len(mine):  # nothing to measure: not even a phase scan
            return PipelineResult(view.pipeline, PipelineStatus.NOT_APPLICABLE, message=notes)
    findings, series = analyse(clip, view, loaded, options, models.batch_size, earlier, done)
    if not findings:
        message = " | ".join(filter(None, ["no caliper point found on the ED/ES frames", notes]))
        return PipelineResult(view.pipeline, PipelineStatus.FAILED, message=message, series=series)
    return PipelineResult(view.pipeline, PipelineStatus.OK, tuple(findings), notes, series)


@pipeline("plax")
def run_measurements_2d_plax(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """IVSd, LVIDd, LVIDs, LVPWd, AoRoot, AoAsc, LAd (cm) from EchoNet-Measurements models."""
    return run_view(clip, models, PLAX, earlier=earlier)


@pipeline("a4c")
def run_measurements_2d_a4c(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """RVbase (cm) from the EchoNet-Measurements RV base model."""
    return run_view(clip, models, A4C, earlier=earlier)
