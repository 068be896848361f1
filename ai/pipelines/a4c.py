"""A4C with EchoNet-Dynamic: LV segmentation per frame and EF; EchoNet-LVH amyloid/HCM.

Reference behaviour (echonet/dynamic; docs/METHODS.md, "A4C"):
- Frames as the lab's DICOM→AVI conversion makes them (ai.pipelines.a4c_frames: first black
  row, square, 10 % border, channel 0, INTER_CUBIC 112×112, triangular corner mask), mean/std on
  the 0–255 scale from the registry (they are not in the checkpoints). A clip whose frame 0
  has no black row in its top half gets the tissue region's square instead, flagged.
- Segmentation: deeplabv3_resnet50 with one output channel, LV where logit > 0. End-systoles are
  the peaks of −(LV pixels per frame) at least 20 frames apart with a prominence of half the
  spread between the sorted sizes at index round(n ** 0.05) and round(n ** 0.95) (the
  reference's order statistics, the power included), found by scipy.signal.find_peaks.
  End-diastoles, which the reference does not look for, are the peaks of the size with the same
  rule.
- EF: r2plus1d_18, clips of 32 frames at period 2. A clip shorter than 32·2 frames is
  zero-padded (after normalisation) to 64 frames and flagged "short_clip_padded"; every start of
  the (padded) clip is taken and the predictions averaged (the lab's "all clips" test-time
  augmentation: starts 0..f − 63 of f ≥ 64 frames, 0 and 1 of a padded one). Beat by beat (the
  lab's R script): the clip starting 32 frames (half a clip's span) before each end-systole,
  at 0 when that is before the first frame, kept where such a start exists; the reported LVEF is
  the mean over those beats, else over every clip start.
Cost: every start of a 32×2 clip is one r2plus1d_18 pass (~1.5 s on two CPU cores), so a
120-frame clip is ~58 passes. Where beats are found only the beats' clips run (the value is the
same; A4cOptions(per_start_series=True) runs every start too, for the LVEF_per_start curve);
without beats every start runs, and A4cOptions.clip_stride > 1 takes every n-th one instead.

EchoNet-LVH A4C classifiers (optional, r3d_18, one logit): the first 96 frames, crop to a
square, 112×112, BGR /255; a shorter clip is reported as too short, never padded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from scipy.signal import find_peaks

from ai.clip import Clip, UltrasoundRegion
from ai.findings import Finding, PipelineResult, PipelineStatus
from ai.model_source import ModelSource
from ai.models.loader import CheckpointError, LoadedModel
from ai.models.normalisation import normalisation_flags
from ai.models.preprocess import Geometry, crop_and_scale, crop_window, to_tensor
from ai.models.registry import default_registry
from ai.models.store import NotInstalled
from ai.pipelines import pipeline
from ai.pipelines.a4c_frames import Window, clip_window, dynamic_frames
from ai.regions import tissue_region

logger = logging.getLogger(__name__)

SEGMENTATION_MODEL = "echonet-dynamic-segmentation"
EF_MODEL = "echonet-dynamic-ef"
NAME = "a4c"
UNITS_CM = 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class A4cOptions:
    clip_stride: int = 1  # 1 = every clip start (reference)
    # Where beats decide the LVEF only their clips are needed (the same value); True also runs
    # every other clip start for the LVEF_per_start curve (one r2plus1d_18 pass each).
    per_start_series: bool = False
    beat_distance: int = 20  # frames between two systoles (reference)
    zoom: float = 0.1  # border trimmed on each side (reference conversion)


# --- preprocess ---------------------------------------------------------------------------


def clip_starts(frame_count: int, frames: int, period: int, stride: int = 1) -> list[int]:
    """Every clip start of the video zero-padded to at least frames·period (the reference)."""
    padded = max(frame_count, frames * period)
    return list(range(0, padded - (frames - 1) * period, max(1, stride)))


def beat_starts(es_frames: list[int], frame_count: int, frames: int, period: int) -> list[int]:
    """The clip start of each beat: half a clip's span before its end-systole, 0 at the
    earliest, kept where it is a clip start (repeats kept: the R script's merge counts each)."""
    count = len(clip_starts(frame_count, frames, period))
    return [s for s in (max(0, es - frames * period // 2) for es in es_frames) if s < count]


def clip_tensor(video: torch.Tensor, start: int, frames: int, period: int) -> torch.Tensor:
    """(N, 3, H, W) normalised frames → (3, frames, H, W), zero-padded past the end."""
    indices = start + period * np.arange(frames)
    picked = torch.zeros((frames, *video.shape[1:]), dtype=video.dtype)
    inside = indices < video.shape[0]
    picked[torch.from_numpy(np.flatnonzero(inside))] = video[indices[inside]]
    return picked.permute(1, 0, 2, 3)


# --- predict ------------------------------------------------------------------------------


def predict_segmentation(model: LoadedModel, batch: torch.Tensor) -> npt.NDArray[np.float32]:
    """(N, 3, H, W) → (N, H, W) LV logits."""
    with torch.inference_mode():
        logits = model.run(batch)[:, 0]
        result: npt.NDArray[np.float32] = logits.float().cpu().numpy()
    return result


def predict_clips(model: LoadedModel, clips: torch.Tensor) -> FloatArray:
    """(B, 3, T, H, W) → (B,) first output of a video model."""
    with torch.inference_mode():
        out = model.run(clips)
        return np.asarray(out[:, 0].float().cpu().numpy(), dtype=np.float64)


# --- postprocess --------------------------------------------------------------------------


def lv_areas(logits: npt.NDArray[np.float32]) -> FloatArray:
    """LV pixels (logit > 0) per frame, in model pixels."""
    return np.asarray((logits > 0).sum(axis=(-2, -1)), dtype=np.float64)


def order_statistic_spread(sizes: FloatArray) -> float:
    """The reference's spread of the LV sizes: sorted(sizes)[round(n ** 0.95)] minus
    sorted(sizes)[round(n ** 0.05)] (a power, not a product: index 1 and 79 of 100 sizes).

    For n ≤ 5 the upper index is n, past the end, where the reference raises IndexError; here
    it is held at the last size.
    """
    ordered = np.sort(np.asarray(sizes, dtype=np.float64))
    n = len(ordered)
    low = ordered[min(n - 1, round(n**0.05))]
    high = ordered[min(n - 1, round(n**0.95))]
    return float(high - low)


def area_phases(area: FloatArray, distance: int = 20) -> tuple[list[int], list[int]]:
    """(ED, ES) frames: peaks of the LV size and of its negative (the reference's ES rule)."""
    if len(area) < 3:
        return [], []
    prominence = 0.5 * order_statistic_spread(area)
    size = np.asarray(area, dtype=np.float64)
    return (
        [int(i) for i in find_peaks(size, distance=distance, prominence=prominence)[0]],
        [int(i) for i in find_peaks(-size, distance=distance, prominence=prominence)[0]],
    )


def area_cm2(pixels: FloatArray, geometry: Geometry, region: UltrasoundRegion) -> FloatArray:
    per_pixel = geometry.scale_x * geometry.scale_y
    return pixels * per_pixel * abs(region.physical_delta_x * region.physical_delta_y)


# --- the pipeline -------------------------------------------------------------------------


Video = tuple[torch.Tensor, Window]


def normalised_video(clip: Clip, model: LoadedModel, zoom: float, batch_size: int) -> Video:
    """Every frame converted and normalised for model: (N, 3, H, W) and the window used."""
    spec = model.spec
    window = clip_window(clip, spec.input_size, zoom)
    parts = []
    for start in range(0, len(clip), batch_size):
        indices = range(start, min(len(clip), start + batch_size))
        frames = np.stack(list(clip.iter_frames(indices)))
        parts.append(to_tensor(dynamic_frames(frames, window.geometry), spec))
    return torch.cat(parts), window


def segment(
    clip: Clip, model: LoadedModel, prepared: Video, options: A4cOptions, batch_size: int
) -> tuple[dict[str, tuple[float, ...]], list[int], list[int]]:
    video, window = prepared
    area = np.concatenate(
        [
            lv_areas(predict_segmentation(model, video[i : i + batch_size]))
            for i in range(0, len(video), batch_size)
        ]
    )
    ed, es = area_phases(area, options.beat_distance)
    series = {
        "LV_area_px": tuple(float(a) for a in area),
        "ED_frames": tuple(float(f) for f in ed),
        "ES_frames": tuple(float(f) for f in es),
    }
    region = tissue_region(clip.regions)
    if region is not None and region.physical_units_x == region.physical_units_y == UNITS_CM:
        series["LV_area_cm2"] = tuple(float(a) for a in area_cm2(area, window.geometry, region))
    return series, ed, es


def ejection_fraction(
    model: LoadedModel,
    prepared: Video,
    es_frames: list[int],
    options: A4cOptions,
    batch_size: int,
) -> tuple[Finding, dict[str, tuple[float, ...]]]:
    spec = model.spec
    video, window = prepared
    span = (spec.frames - 1) * spec.period + 1
    beats = beat_starts(es_frames, len(video), spec.frames, spec.period)
    starts = clip_starts(len(video), spec.frames, spec.period, options.clip_stride)
    if beats and not options.per_start_series:
        starts = []  # the beats decide the value: the other starts would only draw a curve
    wanted = sorted(set(starts) | set(beats))
    clips_per_batch = max(1, batch_size // 4)
    predictions: dict[int, float] = {}
    for i in range(0, len(wanted), clips_per_batch):
        chunk = wanted[i : i + clips_per_batch]
        batch = torch.stack([clip_tensor(video, s, spec.frames, spec.period) for s in chunk])
        predictions.update(zip(chunk, predict_clips(model, batch), strict=True))
    per_start = [predictions[s] for s in starts]
    per_beat = [predictions[s] for s in beats]
    flags = (*normalisation_flags(spec), *window.flags)
    if len(video) < spec.frames * spec.period:
        flags = (*flags, "short_clip_padded")
    spread: tuple[float, float] | None = None
    if per_beat:
        value, flags = float(np.mean(per_beat)), (*flags, "averaged_over_beats")
        if len(per_beat) > 1:
            spread = (min(per_beat), max(per_beat))
        frames = tuple(sorted(set(beats)))
    else:
        value, flags = float(np.mean(per_start)), (*flags, "averaged_over_clip_starts")
        frames = (starts[0], min(len(video), starts[-1] + span) - 1)
    finding = Finding(
        name="LVEF",
        value=value,
        unit="%",
        provenance=model.provenance,
        frames=frames,
        flags=flags,
        spread=spread,
    )
    series = {
        "LVEF_per_start": tuple(per_start),
        "LVEF_per_beat": tuple(per_beat),
        "LVEF_beat_start_frames": tuple(float(b) for b in beats),
    }
    return finding, series


def analyse(
    clip: Clip,
    segmentation: LoadedModel | None,
    ef_model: LoadedModel | None,
    options: A4cOptions,
    batch_size: int,
) -> PipelineResult:
    # Segmentation and EF are fed the same way in the reference: decode the clip once.
    videos: dict[tuple[object, ...], Video] = {}

    def prepared(model: LoadedModel) -> Video:
        spec = model.spec
        key = (spec.input_size, spec.mean, spec.std, spec.scale, spec.colour_order)
        if key not in videos:
            videos[key] = normalised_video(clip, model, options.zoom, batch_size)
        return videos[key]

    series: dict[str, tuple[float, ...]] = {}
    es: list[int] = []
    if segmentation is not None:
        seg_series, _, es = segment(clip, segmentation, prepared(segmentation), options, batch_size)
        series.update(seg_series)
    findings: tuple[Finding, ...] = ()
    if ef_model is not None:
        finding, ef_series = ejection_fraction(
            ef_model, prepared(ef_model), es, options, batch_size
        )
        findings, series = (finding,), {**series, **ef_series}
    return PipelineResult(NAME, PipelineStatus.OK, findings, "", series)


def _store_answers(models: ModelSource | None, *names: str) -> list[LoadedModel | NotInstalled]:
    if models is not None:
        return [models.get(name) for name in names]
    registry = default_registry()
    return [
        NotInstalled(name, registry.get(name).file, registry.get(name).install_command(), False)
        for name in names
    ]


@pipeline("a4c")
def run_a4c(
    clip: Clip,
    models: ModelSource | None,
    options: A4cOptions | None = None,
    *,
    earlier: Sequence[PipelineResult] = (),
) -> PipelineResult:
    """LVEF (%) with EchoNet-Dynamic, LV area curve and ED/ES frames."""
    try:
        seg, ef = _store_answers(models, SEGMENTATION_MODEL, EF_MODEL)
    except CheckpointError as exc:  # an installed file that does not fit: say so, no value
        return PipelineResult(NAME, PipelineStatus.FAILED, message=str(exc))
    missing = [answer for answer in (seg, ef) if isinstance(answer, NotInstalled)]
    if len(missing) == 2:
        return PipelineResult(
            NAME,
            PipelineStatus.MODEL_NOT_INSTALLED,
            message="; ".join(answer.message for answer in missing),
        )
    if len(clip) == 0:
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message="clip has no frames")
    batch_size = models.batch_size if models is not None else 16
    logger.info("a4c on %d frames", len(clip), extra={"sop_instance_uid": clip.sop_instance_uid})
    result = analyse(
        clip,
        seg if isinstance(seg, LoadedModel) else None,
        ef if isinstance(ef, LoadedModel) else None,
        options or A4cOptions(),
        batch_size,
    )
    if missing:  # one of the two ran: say what the other would add
        return PipelineResult(
            result.pipeline, result.status, result.findings, missing[0].message, result.series
        )
    return result


# --- EchoNet-LVH A4C classifiers (optional) -----------------------------------------------


def classifier_input(clip: Clip, model: LoadedModel) -> torch.Tensor:
    """The first `frames` frames, square crop, resized (INTER_LINEAR), BGR /255: (1,3,T,H,W)."""
    spec = model.spec
    geometry = crop_window(clip.rows, clip.columns, spec.input_width, spec.input_height)
    frames = np.stack([crop_and_scale(f, geometry) for f in clip.iter_frames(range(spec.frames))])
    return to_tensor(frames, spec).permute(1, 0, 2, 3).unsqueeze(0)


def classify(clip: Clip, models: ModelSource | None, name: str, finding: str) -> PipelineResult:
    pipeline_name = f"a4c_{finding}"
    try:
        (answer,) = _store_answers(models, name)
    except CheckpointError as exc:
        return PipelineResult(pipeline_name, PipelineStatus.FAILED, message=str(exc))
    if isinstance(answer, NotInstalled):
        return PipelineResult(
            pipeline_name, PipelineStatus.MODEL_NOT_INSTALLED, message=answer.message
        )
    needed = answer.spec.frames
    if len(clip) < needed:
        return PipelineResult(
            pipeline_name,
            PipelineStatus.NOT_APPLICABLE,
            message=f"clip too short: {len(clip)} frames, {name} needs the first {needed} "
            "(not padded)",
        )
    logit = predict_clips(answer, classifier_input(clip, answer))[0]
    probability = float(1.0 / (1.0 + np.exp(-logit)))
    return PipelineResult(
        pipeline_name,
        PipelineStatus.OK,
        (
            Finding(
                name=f"{finding}_probability",
                value=probability,
                unit="1",
                provenance=answer.provenance,
                frames=tuple(range(needed)),
            ),
        ),
    )


@pipeline("a4c")
def run_a4c_amyloid(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """Probability of cardiac amyloidosis (EchoNet-LVH, optional model)."""
    return classify(clip, models, "echonet-lvh-amyloid", "amyloid")


@pipeline("a4c")
def run_a4c_hcm(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """Probability of hypertrophic cardiomyopathy (EchoNet-LVH, optional model)."""
    return classify(clip, models, "echonet-lvh-hcm", "hcm")
