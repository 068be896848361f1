"""EchoNet-Measurements Doppler models beside the classical engine (ai.pipelines.doppler).

The classical engine always runs; this pipeline runs the lab's deeplabv3_resnet50 point models
where their checkpoints are installed, and both results come back (docs/METHODS.md,
"Doppler").

Reference behaviour, followed exactly on the layout the models were trained on:

- Input: the frame from the spectral region's top row (RegionLocationMinY0, y0) down to the
  bottom of the image, over the full image width; RGB /255, no mean/std. Before that, ECG pixels
  (G > 200 and R < 100) are set to 0 in all three channels. ai.decode has already turned YBR,
  palette and monochrome pixels into RGB (grey pixels never meet the ECG rule).
- Output: sigmoid heat map(s); the point is the argmax (the first maximum in row-major order).
  The models were trained to mark one beat. Their maps are per pixel, so the node reads the
  maximum within each beat the classical engine delimits on the same frame (ECG R waves, else
  gaps in the envelope: ai.pipelines.doppler.beat_spans), leaves out a beat whose maximum is
  below half the image's (one the model does not mark), and combines the beats as echo labs
  report them (ASE): TR, AV and MR Vmax the fastest beat, LVOT Vmax, E, A and e' the mean, E/A
  the ratio of the mean E and A; each beat's value and point are kept in Finding.beats. With no
  beat found the image's maximum alone is the value, as in the reference.
- Velocity at the point's row r: the region's calibration, ReferencePixelPhysicalValueY +
  (r − (y0 + ReferencePixelY0)) × PhysicalDeltaY in cm/s. The reference writes
  |PhysicalDeltaY| × (r − baseline), positive below the baseline; here the sign is the
  calibration's, as in the classical engine (flow away from the transducer drawn below the
  baseline is negative when PhysicalDeltaY < 0), so the two engines' values compare directly.
  e' (e_lat, e_med) is reported as a speed (absolute value): e' is quoted without a sign.
- mvpeak (2 channels): channel 1 is E, channel 0 is A, each point its channel's argmax (per beat).
  As in the reference the left point is E (swapped, flagged "EA_order_from_position", when the
  channels disagree) and points more than 300 columns apart in the model's grid are refused (not
  one beat).

Training layout: 768×1024 images with y0 in 340–350 (426 rows from y0 ≈ 342 down). Such an image
is fed unchanged (the reference does not resize). Any other layout is resampled (INTER_LINEAR,
pixel-centre convention of ai.models.preprocess.Geometry) so that the window from y0 to the
image bottom over the full width becomes the registry's input size (426×1024); the point is
mapped back to source pixels and the velocity computed with the source calibration, so the
resampling never changes the scale. Those findings carry the flag "outside_training_layout" and
the result's message gives the original geometry. A point outside the spectral region's bounds
is flagged "point_outside_region".

Which model, for a spectral clip (RegionDataType 3 PW / 4 CW) with a velocity calibration:

- CW: the classical keyword rule first (ai.pipelines.doppler.keyword_flow: TR words → trvmax,
  then AV words, LVOT included → avvmax); then MR words (MR, mitral regurgitation) → mrvmax.
- PW: tissue Doppler words (TDI, TVI, DTI, tissue, e', e prime) with a side → latevel (LAT,
  lateral) or medevel (MED, medial, septal); tissue words with no side or both sides are
  not_applicable. Else LVOT → lvotvmax; else MV, mitral, inflow → mvpeak. Other flow keywords
  (TR, AV) on a PW clip are not_applicable: there is no PW model for them.
- No keyword: the classical engine decides, by running it: its TR_Vmax → trvmax, AV_Vmax →
  avvmax, MV_E → mvpeak, with the flag "flow_identified_by_shape"; where it recognises no flow
  the result is not_applicable with its reason. Nothing is guessed.

When none of the models that may apply is installed the status is model_not_installed with the
`echo-node models import PATH --name NAME` command, and no value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch

from ai.clip import Clip, UltrasoundRegion
from ai.findings import Aggregation, Beat, Finding, PipelineResult, PipelineStatus, Provenance
from ai.model_source import ModelSource
from ai.models.loader import CheckpointError, LoadedModel
from ai.models.preprocess import Geometry, crop_and_scale, to_tensor
from ai.models.registry import ModelSpec
from ai.models.store import NotInstalled
from ai.pipelines import pipeline
from ai.pipelines.doppler import beat_spans, combine, header_text, keyword_flow
from ai.pipelines.doppler import measure as classical_measure
from ai.regions import DATA_CW, UnitError, contains, row_to_velocity, spectral_region

logger = logging.getLogger(__name__)

NAME = "doppler_neural"
TRAINING_ROWS, TRAINING_COLUMNS = 768, 1024
TRAINING_Y0 = (340, 350)  # the reference's folders mode skips files with y0 outside this range
MV_MAX_SEPARATION = 300  # model-grid columns between E and A (reference guard)
OUTSIDE = "outside_training_layout"

AV = "echonet-measurements-avvmax"
TR = "echonet-measurements-trvmax"
MR = "echonet-measurements-mrvmax"
LVOT = "echonet-measurements-lvotvmax"
MV = "echonet-measurements-mvpeak"
E_LAT = "echonet-measurements-latevel"
E_MED = "echonet-measurements-medevel"
FINDING_OF = {
    AV: "AV_Vmax",
    TR: "TR_Vmax",
    MR: "MR_Vmax",
    LVOT: "LVOT_Vmax",
    E_LAT: "e_lat",
    E_MED: "e_med",
}  # MV gives MV_E, MV_A and MV_E_A
SPEEDS = ("e_lat", "e_med")  # reported without sign
# ASE: a jet's peak velocity is the fastest beat; inflow and tissue velocities the mean of beats.
AGGREGATION = {
    "AV_Vmax": Aggregation.MAX,
    "TR_Vmax": Aggregation.MAX,
    "MR_Vmax": Aggregation.MAX,
    "LVOT_Vmax": Aggregation.MEAN,
    "e_lat": Aggregation.MEAN,
    "e_med": Aggregation.MEAN,
}
BIPHASIC = (MV, E_LAT, E_MED)  # two waves a beat (E and A; e' and a'): beats grouped as such
# A beat whose heat-map maximum is below this share of the image's is one the model does not
# mark (it was trained to mark one beat; its map still lights up at the others' peaks).
BEAT_HEAT_SHARE = 0.5

_MR_WORDS = re.compile(r"\b(MR|MITRAL\s+REGURG\w*)\b", re.IGNORECASE)
_TISSUE_WORDS = re.compile(r"\b(TDI|TVI|DTI|TISSUE)\b|\be\s*(?:'|’|PRIME\b)", re.IGNORECASE)
_LATERAL_WORDS = re.compile(r"\bLAT(ERAL)?\b", re.IGNORECASE)
_MEDIAL_WORDS = re.compile(r"\b(MED(IAL)?|SEPT(AL|UM)?)\b", re.IGNORECASE)
_LVOT_WORDS = re.compile(r"\bLVOT\b", re.IGNORECASE)
_MV_WORDS = re.compile(r"\b(MV|MITRAL|INFLOW)\b", re.IGNORECASE)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Target:
    """The model chosen for a clip and why."""

    model: str
    flags: tuple[str, ...] = ()


# --- which model ---------------------------------------------------------------------------


def keyword_target(clip: Clip, region: UltrasoundRegion) -> Target | str | None:
    """The model the header names; a str is why none applies; None: the header does not say."""
    text = header_text(clip)
    flow = keyword_flow(clip)
    if region.data_type == DATA_CW:
        if flow is not None:
            return Target(TR if flow == "TR" else AV)
        return Target(MR) if _MR_WORDS.search(text) else None
    if _TISSUE_WORDS.search(text):
        lateral, medial = bool(_LATERAL_WORDS.search(text)), bool(_MEDIAL_WORDS.search(text))
        if lateral == medial:
            return "tissue Doppler that names neither or both of lateral and medial: no e' model"
        return Target(E_LAT if lateral else E_MED)
    if _LVOT_WORDS.search(text):
        return Target(LVOT)
    if _MV_WORDS.search(text):
        return Target(MV)
    if flow is not None:
        return f"PW Doppler named {flow}: EchoNet-Measurements has no PW model for it"
    return None


def shape_candidates(region: UltrasoundRegion) -> tuple[str, ...]:
    """The models the classical engine's decision can lead to, without keywords."""
    return (TR, AV) if region.data_type == DATA_CW else (MV,)


def shape_target(clip: Clip) -> Target | str:
    """The classical engine's reading of the flow (see the module docstring)."""
    classical = classical_measure(clip)
    names = {finding.name for finding in classical.findings}
    for name, model in (("TR_Vmax", TR), ("AV_Vmax", AV), ("MV_E", MV)):
        if name in names:
            return Target(model, ("flow_identified_by_shape",))
    return (
        "the header names no flow and the classical engine recognised none "
        f"({classical.status.value}: {classical.message})"
    )


# --- preprocess ----------------------------------------------------------------------------


def remove_ecg(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A copy with the ECG trace's pixels (G > 200 and R < 100) set to 0, as the reference does."""
    out = frame.copy()
    out[(frame[..., 1] > 200) & (frame[..., 0] < 100)] = 0
    return out


def in_training_layout(rows: int, columns: int, y0: int) -> bool:
    low, high = TRAINING_Y0
    return rows == TRAINING_ROWS and columns == TRAINING_COLUMNS and low <= y0 <= high


def strip_geometry(rows: int, columns: int, y0: int, spec: ModelSpec) -> tuple[Geometry, str]:
    """The window from y0 to the image bottom, full width, and its size fed to the model.

    Unchanged in the training layout; otherwise resampled to the spec's input size, and the
    second value describes the original geometry (empty in the training layout).
    """
    height = rows - y0
    if in_training_layout(rows, columns, y0):
        return Geometry(0, y0, columns, height, columns, height), ""
    geometry = Geometry(0, y0, columns, height, spec.input_width, spec.input_height)
    low, high = TRAINING_Y0
    note = (
        f"outside the training layout: {rows}x{columns} image with the spectral region's top at "
        f"row {y0} (trained on {TRAINING_ROWS}x{TRAINING_COLUMNS}, top at rows {low}-{high}); "
        f"the {columns}x{height} strip was resampled to {spec.input_width}x{spec.input_height}"
    )
    return geometry, note


def model_input(frame: npt.NDArray[np.uint8], geometry: Geometry, spec: ModelSpec) -> torch.Tensor:
    """(1, 3, H, W) float tensor: ECG removed, strip cut and resampled, /255."""
    strip = crop_and_scale(remove_ecg(frame), geometry, cv2.INTER_LINEAR)
    return to_tensor(strip[None], spec)


# --- predict -------------------------------------------------------------------------------


def predict(model: LoadedModel, batch: torch.Tensor) -> npt.NDArray[np.float32]:
    """Sigmoid heat maps (C, H, W) of one image."""
    with torch.inference_mode():
        logits = model.run(batch)
        maps: npt.NDArray[np.float32] = torch.sigmoid(logits)[0].float().cpu().numpy()
    return maps


# --- postprocess ---------------------------------------------------------------------------


def peak_point(heatmap: npt.NDArray[np.floating]) -> tuple[int, int]:
    """(x, y) of the map's maximum in the model grid (min-max scaling does not move it)."""
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(x), int(y)


def point_velocity(
    point: tuple[float, float], geometry: Geometry, region: UltrasoundRegion
) -> tuple[float, float, float]:
    """(x, y) in source pixels and the velocity in cm/s there, signed by the calibration."""
    source = geometry.to_source(np.asarray(point, dtype=np.float64))
    x, y = float(source[0]), float(source[1])
    return x, y, row_to_velocity(region, y)


# --- beats ---------------------------------------------------------------------------------


def span_columns(span: tuple[int, int], geometry: Geometry) -> npt.NDArray[np.intp]:
    """The model-grid columns whose centres fall in a source column span [start, stop)."""
    grid = np.arange(geometry.out_width, dtype=np.float64)
    source = geometry.x0 + (grid + 0.5) * geometry.scale_x - 0.5
    inside: npt.NDArray[np.intp] = np.flatnonzero(
        (source >= span[0] - 0.5) & (source < span[1] - 0.5)
    )
    return inside


def beat_peaks(
    heatmap: npt.NDArray[np.floating], spans: Sequence[tuple[int, int]], geometry: Geometry
) -> list[tuple[int, int] | None]:
    """Per beat span, (x, y) of the map's maximum inside it in the model grid; None for a beat
    the model does not mark (its maximum below BEAT_HEAT_SHARE of the image's)."""
    floor = BEAT_HEAT_SHARE * float(heatmap.max())
    peaks: list[tuple[int, int] | None] = []
    for span in spans:
        columns = span_columns(span, geometry)
        if columns.size == 0 or float(heatmap[:, columns].max()) < floor:
            peaks.append(None)
            continue
        x, y = peak_point(heatmap[:, columns])
        peaks.append((int(columns[x]), y))
    return peaks


# --- the pipeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    """The heat maps in the model grid and how to turn a grid point into a finding."""

    maps: npt.NDArray[np.floating]
    geometry: Geometry
    region: UltrasoundRegion
    provenance: Provenance
    frame: int
    flags: tuple[str, ...]

    def at(self, point: tuple[int, int]) -> tuple[float, float, float]:
        return point_velocity(point, self.geometry, self.region)

    def finding(
        self,
        name: str,
        beats: Sequence[Beat],
        aggregation: Aggregation,
        extra: tuple[str, ...] = (),
        value: float | None = None,
    ) -> Finding:
        """The finding of these beats, combined by `aggregation` (or `value`, for a ratio)."""
        values = [b.value for b in beats]
        points = tuple(p for b in beats for p in b.points)
        outside = any(not contains(self.region, x, y) for x, y in points)
        several = len(beats) > 1
        if value is None:
            value = combine(values, aggregation) if several else values[0]
        return Finding(
            name=name,
            value=value,
            unit="1" if name == "MV_E_A" else "cm/s",
            provenance=self.provenance,
            frames=(self.frame,),
            points=points,
            cardiac_phase="diastole" if name.startswith(("MV_", "e_")) else None,
            flags=self.flags + extra + (("point_outside_region",) if outside else ()),
            spread=(min(values), max(values)) if several else None,
            beats=tuple(beats) if several else (),
            aggregation=aggregation if several else Aggregation.SINGLE,
        )


def _single(reading: _Reading, name: str, spans: Sequence[tuple[int, int]]) -> Finding:
    """One velocity model: its peak in each beat, combined by the ASE convention; the image's
    peak alone where no beat is known or marked."""
    found = [p for p in beat_peaks(reading.maps[0], spans, reading.geometry) if p is not None]
    if not found:
        found = [peak_point(reading.maps[0])]
    beats = []
    for point in found:
        x, y, velocity = reading.at(point)
        beats.append(Beat(abs(velocity) if name in SPEEDS else velocity, reading.frame, ((x, y),)))
    return reading.finding(name, beats, AGGREGATION[name])


def _mitral(reading: _Reading, spans: Sequence[tuple[int, int]]) -> tuple[Finding, ...] | str:
    """E (channel 1) and A (channel 0) in each beat, E left of A; E and A the means of the
    beats, E/A their ratio."""
    e_maps, a_maps = reading.maps[1], reading.maps[0]
    pairs = [
        (e, a)
        for e, a in zip(
            beat_peaks(e_maps, spans, reading.geometry),
            beat_peaks(a_maps, spans, reading.geometry),
            strict=True,
        )
        if e is not None and a is not None
    ]
    pairs = pairs or [(peak_point(e_maps), peak_point(a_maps))]
    extra: tuple[str, ...] = ()
    e_beats: list[Beat] = []
    a_beats: list[Beat] = []
    for e_point, a_point in pairs:
        if e_point[0] > a_point[0]:
            e_point, a_point, extra = a_point, e_point, ("EA_order_from_position",)
        if a_point[0] - e_point[0] > MV_MAX_SEPARATION:
            return (
                f"E and A points {a_point[0] - e_point[0]} model columns apart "
                f"(more than {MV_MAX_SEPARATION}): not one beat"
            )
        ex, ey, e = reading.at(e_point)
        ax, ay, a = reading.at(a_point)
        e_beats.append(Beat(e, reading.frame, ((ex, ey),)))
        a_beats.append(Beat(a, reading.frame, ((ax, ay),)))
    e_finding = reading.finding("MV_E", e_beats, Aggregation.MEAN, extra)
    a_finding = reading.finding("MV_A", a_beats, Aggregation.MEAN, extra)
    ratios = [
        Beat(e.value / a.value if a.value else float("nan"), reading.frame, (*e.points, *a.points))
        for e, a in zip(e_beats, a_beats, strict=True)
    ]
    combined = e_finding.value / a_finding.value if a_finding.value else float("nan")
    ratio = reading.finding("MV_E_A", ratios, Aggregation.RATIO, extra, value=combined)
    return (e_finding, a_finding, ratio)


def interpret(
    maps: npt.NDArray[np.floating],
    geometry: Geometry,
    note: str,
    region: UltrasoundRegion,
    provenance: Provenance,
    target: Target,
    frame: int,
    spans: Sequence[tuple[int, int]] = (),
    beat_flags: tuple[str, ...] = (),
) -> PipelineResult:
    """Heat maps (C, H, W) in the model grid → the result, points in source pixels.

    note is strip_geometry's description of a layout outside the training one (empty inside);
    spans the beats' source column spans (ai.pipelines.doppler.beat_spans), found as
    `beat_flags` say.
    """
    flags = ((OUTSIDE,) if note else ()) + target.flags + (beat_flags if spans else ())
    reading = _Reading(maps, geometry, region, provenance, frame, flags)
    found: tuple[Finding, ...] | str
    if target.model == MV:
        found = _mitral(reading, spans)
    else:
        found = (_single(reading, FINDING_OF[target.model], spans),)
    if isinstance(found, str):
        return PipelineResult(NAME, PipelineStatus.FAILED, message=found)
    return PipelineResult(NAME, PipelineStatus.OK, found, message=note)


def measure(clip: Clip, model: LoadedModel, target: Target) -> PipelineResult:
    """Run one model on the clip's last frame (the fullest sweep, as the classical engine)."""
    region = spectral_region(clip.regions)
    if region is None:
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message="no spectral region")
    index = len(clip) - 1
    frame = clip.frames[index]
    rows, columns = frame.shape[:2]
    geometry, note = strip_geometry(rows, columns, region.min_y0, model.spec)
    maps = predict(model, model_input(frame, geometry, model.spec))
    spans, beat_flags = beat_spans(clip, index, biphasic=target.model in BIPHASIC)
    result = interpret(
        maps, geometry, note, region, model.provenance, target, index, spans, beat_flags
    )
    logger.info(
        "%s (%s): %s %s",
        NAME,
        model.spec.name,
        result.status.value,
        ", ".join(f"{f.name}={f.value:.2f}" for f in result.findings),
        extra={"sop_instance_uid": clip.sop_instance_uid},
    )
    return result


def _not_installed(names: tuple[str, ...], models: ModelSource | None) -> PipelineResult:
    commands = "; ".join(f"echo-node models import PATH --name {name}" for name in names)
    where = "no model store configured" if models is None else "not installed"
    return PipelineResult(
        NAME,
        PipelineStatus.MODEL_NOT_INSTALLED,
        message=f"{where}: {', '.join(names)}; install with: {commands}",
    )


@pipeline("doppler")
def run_doppler_neural(
    clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
) -> PipelineResult:
    """Peak velocities from the EchoNet-Measurements Doppler model that fits the clip."""
    region = spectral_region(clip.regions)
    if region is None:
        message = "no spectral Doppler region (RegionDataType 3 PW or 4 CW)"
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message=message)
    try:
        row_to_velocity(region, region.min_y0)
    except UnitError as error:
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message=str(error))
    decided = keyword_target(clip, region)
    if isinstance(decided, str):
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message=decided)
    names = (decided.model,) if decided else shape_candidates(region)
    if models is None:
        return _not_installed(names, None)
    if not any(models.installed(name) for name in names):
        return _not_installed(names, models)
    target = decided or shape_target(clip)
    if isinstance(target, str):
        return PipelineResult(NAME, PipelineStatus.NOT_APPLICABLE, message=target)
    try:
        loaded = models.get(target.model)
    except CheckpointError as error:  # an installed file that does not fit: say so, no value
        return PipelineResult(NAME, PipelineStatus.FAILED, message=str(error))
    if isinstance(loaded, NotInstalled):
        return PipelineResult(NAME, PipelineStatus.MODEL_NOT_INSTALLED, message=loaded.message)
    return measure(clip, loaded, target)
