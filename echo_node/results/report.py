"""The report model: what the node reports about a study, decided once for every result object.

`build_report(sources)` turns the study's clip results into a frozen, template-independent
`Report`. The SR writers (TID 5200 in sr.py, TID 5300 in sr5300.py), the overlays, a TID 1500
copy and a PDF all print this and nothing else, so a value reads the same in each of them and
a value one of them withholds is withheld by all.

What it decides:

- **One value per measurement.** Each finding a pipeline returned is judged by its quality
  flags (quality.py: withhold, qualify or record). Of the values of one measurement (a Finding
  name in catalogue.MEASURED) that may be reported, the one with the fewest qualifications
  wins, then the first in study order (sources in order, pipelines in their order: the
  classical Doppler engine before the neural models). The others are kept as `alternatives`
  (for `echo-node jobs show`), not reported.
- **Withheld values** get one plain sentence each ("Left Ventricular Ejection Fraction not
  reported: outside physiological limits."), only when no value of that measurement is
  reported.
- **Reported values** carry the value and UCUM unit as the SR writes them, rounded to the
  precision a cart prints, and the display string from that same number ("TR Vmax 2.55 m/s";
  catalogue.py); the aggregation over beats (ASE conventions; the pipeline's own where it says)
  and each beat's frame, points and value for its caliper; the source clip; the algorithm that
  made it (name, registry version, checkpoint sha256, whether that matches a published digest);
  and the sentences of the flags that qualify it.
- **Derived values** (E/A, TR and AV peak gradients, LV mass, RWT, FS) are calculated from the
  reported values with the formula stated (catalogue.DERIVED); one whose input was withheld is
  itself withheld, saying which input.
- **Patient characteristics and heart rate** from the source headers (Patient Size and Weight,
  BSA by DuBois, Heart Rate), when they are there and plausible.
- **Not measured**: per clip that gave no value, one sentence in clinical words (the view, and
  whether its model is not installed or the clip could not be measured). No UIDs, flag names or
  commands: those are in `echo-node jobs show`.

Findings outside the catalogue (the EchoNet-LVH screening probabilities, the pipelines' own E/A)
are listed in `unlisted` and not reported.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom.dataset import Dataset

from ai.findings import (
    Aggregation,
    ClipResult,
    Finding,
    PipelineStatus,
    Provenance,
    View,
)
from echo_node.results import catalogue, quality
from echo_node.results.catalogue import Geometry, Presentation

logger = logging.getLogger(__name__)

Point = tuple[float, float]


@dataclass(frozen=True)
class SourceClip:
    """One source instance: its header (read with stop_before_pixels) and what ai/ found."""

    header: Dataset
    result: ClipResult | None = None


class ImageMode(StrEnum):
    TWO_D = "2D"
    M = "M"
    PW = "PW"
    CW = "CW"
    SPECTRAL = "spectral"  # a spectral clip that does not say PW or CW


class AlgorithmKind(StrEnum):
    AI = "ai"  # a neural network checkpoint
    CLASSICAL = "classical"  # the node's classical image processing
    CALCULATION = "calculation"  # arithmetic on reported values


@dataclass(frozen=True)
class SourceImage:
    """The clip a value was measured on, as a result object references it."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    number_of_frames: int
    instance_number: int | None
    view: View
    mode: ImageMode

    @property
    def multi_frame(self) -> bool:
        return self.number_of_frames > 1


@dataclass(frozen=True)
class Algorithm:
    """What made a value: the exact weights (or engine version) behind it."""

    name: str  # registry name, e.g. "echonet-measurements-trvmax", or "classical-doppler"
    version: str  # registry version or engine version
    kind: AlgorithmKind
    sha256: str | None = None  # of the checkpoint file
    published: bool | None = None  # sha256 matches a published digest; None: none known

    @property
    def version_text(self) -> str:
        """The version that identifies the exact weights: "main sha256:76658959..."."""
        return f"{self.version} sha256:{self.sha256}" if self.sha256 else self.version

    @property
    def weights_text(self) -> str | None:
        """Whether the weights are the publisher's, in words (None for no weights)."""
        if self.kind is not AlgorithmKind.AI:
            return None
        if self.published is None:
            return "no published digest is known for this model's weights"
        if self.published:
            return "weights match the digest published by the model's authors"
        return "weights do not match the published digest: not the published checkpoint"


@dataclass(frozen=True)
class BeatMark:
    """One beat (or frame) of a value: where its caliper is and, where known, its value."""

    frame: int  # zero-based source frame
    points: tuple[Point, ...]  # source pixels (x, y); empty for Geometry.FRAMES
    value: float | None  # in the value's SR unit, rounded like it; None if not given


class _Shown:
    """What a reported or derived value reads as: its names, SR unit and display string."""

    presentation: Presentation
    value: float

    @property
    def label(self) -> str:
        return self.presentation.label

    @property
    def unit(self) -> str:
        return self.presentation.unit

    @property
    def display(self) -> str:
        return self.presentation.display(self.value)


@dataclass(frozen=True)
class ReportedValue(_Shown):
    key: str  # the Finding name, e.g. "MV_E"
    presentation: Presentation
    value: float  # in presentation.unit, rounded to presentation.resolution
    aggregation: Aggregation
    geometry: Geometry
    beats: tuple[BeatMark, ...]
    phase: str | None  # "diastole" / "systole" where the finding says
    source: SourceImage
    algorithm: Algorithm
    qualifiers: tuple[str, ...] = ()  # sentences of the flags that qualify it
    flags: tuple[str, ...] = ()  # every flag of the finding, for the job record


@dataclass(frozen=True)
class DerivedValue(_Shown):
    key: str
    presentation: Presentation
    value: float  # rounded like presentation.resolution
    formula: str
    inputs: tuple[ReportedValue, ...]
    qualifiers: tuple[str, ...] = ()  # those of its inputs

    @property
    def source(self) -> SourceImage:
        """The clip of its first input (the mode and view it is reported with)."""
        return self.inputs[0].source


@dataclass(frozen=True)
class WithheldValue:
    key: str
    label: str
    reasons: tuple[str, ...]
    calculated: bool = False  # a derived value whose input was withheld
    source: SourceImage | None = None
    algorithm: Algorithm | None = None
    flags: tuple[str, ...] = ()  # of the values withheld, for the job record

    @property
    def sentence(self) -> str:
        verb = "not calculated" if self.calculated else "not reported"
        return f"{self.label} {verb}: {'; '.join(self.reasons)}."


@dataclass(frozen=True)
class Characteristic:
    """A patient characteristic or the heart rate, from the source headers."""

    key: str  # "height", "weight", "bsa", "heart_rate"
    presentation: Presentation
    value: float
    formula: str | None = None

    @property
    def display(self) -> str:
        return self.presentation.display(self.value)


@dataclass(frozen=True)
class Alternative:
    """A value measured but not reported, because another of the same measurement was."""

    key: str
    value: float  # SR unit, rounded
    display: str
    source: SourceImage
    algorithm: Algorithm
    withheld: tuple[str, ...] = ()  # why it could not have been reported itself
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unlisted:
    """A finding the report has no place for (e.g. a screening probability)."""

    name: str
    value: float
    unit: str
    source: SourceImage
    algorithm: Algorithm


@dataclass(frozen=True)
class Report:
    sources: tuple[SourceImage, ...]
    values: tuple[ReportedValue, ...] = ()  # catalogue order
    derived: tuple[DerivedValue, ...] = ()
    withheld: tuple[WithheldValue, ...] = ()
    not_measured: tuple[str, ...] = ()  # one sentence per clip that gave no value
    characteristics: tuple[Characteristic, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    unlisted: tuple[Unlisted, ...] = ()

    def value(self, key: str) -> ReportedValue | DerivedValue | None:
        items: tuple[ReportedValue | DerivedValue, ...] = (*self.values, *self.derived)
        return next((item for item in items if item.key == key), None)

    def values_of(self, sop_instance_uid: str) -> tuple[ReportedValue, ...]:
        """The values reported from one clip (what its overlay shows)."""
        return tuple(v for v in self.values if v.source.sop_instance_uid == sop_instance_uid)

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        """Every algorithm behind a reported value, in order of first use."""
        return tuple(dict.fromkeys(v.algorithm for v in self.values))

    @property
    def notes(self) -> tuple[str, ...]:
        """The sentences a reader gets besides the values: withheld, then not measured."""
        return (*(w.sentence for w in self.withheld), *self.not_measured)


# --- building -----------------------------------------------------------------------------


def pair_results(
    sources: Sequence[SourceClip], results: Sequence[ClipResult] | None
) -> list[SourceClip]:
    """Each source with its result: its own, else the item of `results` with its UID."""
    by_uid = {r.sop_instance_uid: r for r in results or ()}
    known = {s.header.SOPInstanceUID for s in sources}
    unknown = [uid for uid in by_uid if uid not in known]
    if unknown:
        raise ValueError(f"results: no source instance for SOP Instance UID(s) {unknown}")
    return [SourceClip(s.header, s.result or by_uid.get(s.header.SOPInstanceUID)) for s in sources]


@dataclass(frozen=True)
class _Candidate:
    finding: Finding
    source: SourceImage
    algorithm: Algorithm
    verdict: quality.Verdict
    order: int


@dataclass
class _Collected:
    candidates: dict[str, list[_Candidate]] = field(default_factory=dict)
    unlisted: list[Unlisted] = field(default_factory=list)
    productive: set[str] = field(default_factory=set)  # clips that gave a catalogued finding


def build_report(
    sources: Sequence[SourceClip], results: Sequence[ClipResult] | None = None
) -> Report:
    """The study's report (see the module docstring)."""
    pairs = pair_results(sources, results)
    images = [source_image(s.header, s.result) for s in pairs]
    collected = _collect(pairs, images)
    values: list[ReportedValue] = []
    withheld: list[WithheldValue] = []
    alternatives: list[Alternative] = []
    for key, measured in catalogue.MEASURED.items():
        found = collected.candidates.get(key)
        if not found:
            continue
        chosen, others, refused = _choose(found)
        if chosen is None:
            first = refused[0]
            reasons = tuple(dict.fromkeys(r for c in refused for r in c.verdict.withheld))
            flags = tuple(dict.fromkeys(f for c in refused for f in c.finding.flags))
            withheld.append(
                WithheldValue(
                    key,
                    measured.presentation.label,
                    reasons,
                    False,
                    first.source,
                    first.algorithm,
                    flags,
                )
            )
            continue
        values.append(_reported(key, measured, chosen))
        alternatives.extend(_alternative(key, measured, c) for c in (*others, *refused))
    derived, derived_withheld = _derive(values, {w.key for w in withheld})
    return Report(
        sources=tuple(images),
        values=tuple(values),
        derived=tuple(derived),
        withheld=(*withheld, *derived_withheld),
        not_measured=tuple(_not_measured(pairs, images, collected.productive)),
        characteristics=tuple(characteristics([s.header for s in pairs])),
        alternatives=tuple(alternatives),
        unlisted=tuple(collected.unlisted),
    )


def source_image(header: Dataset, result: ClipResult | None) -> SourceImage:
    view = result.view.view if result is not None else View.UNKNOWN
    number = header.get("InstanceNumber")
    return SourceImage(
        sop_class_uid=str(header.SOPClassUID),
        sop_instance_uid=str(header.SOPInstanceUID),
        series_instance_uid=str(header.get("SeriesInstanceUID", "")),
        number_of_frames=int(header.get("NumberOfFrames", 1) or 1),
        instance_number=int(number) if number not in (None, "") else None,
        view=view,
        mode=_mode(result),
    )


def _mode(result: ClipResult | None) -> ImageMode:
    if result is None:
        return ImageMode.TWO_D
    view = result.view
    if view.view is View.MMODE:
        return ImageMode.M
    if view.view is View.DOPPLER:
        return {"PW": ImageMode.PW, "CW": ImageMode.CW}.get(
            view.doppler_mode or "", ImageMode.SPECTRAL
        )
    return ImageMode.TWO_D


def algorithm(provenance: Provenance) -> Algorithm:
    kind = AlgorithmKind.AI if provenance.sha256 else AlgorithmKind.CLASSICAL
    return Algorithm(
        provenance.name, provenance.version, kind, provenance.sha256, provenance.published
    )


def _collect(pairs: Sequence[SourceClip], images: Sequence[SourceImage]) -> _Collected:
    collected = _Collected()
    order = 0
    for pair, image in zip(pairs, images, strict=True):
        if pair.result is None:
            continue
        for pipeline in pair.result.pipelines:
            if pipeline.status is not PipelineStatus.OK:
                continue
            for finding in pipeline.findings:
                made_by = algorithm(finding.provenance)
                if finding.name not in catalogue.MEASURED:
                    if finding.name not in catalogue.DERIVED:  # the pipelines' own E/A
                        collected.unlisted.append(
                            Unlisted(finding.name, finding.value, finding.unit, image, made_by)
                        )
                    continue
                collected.productive.add(image.sop_instance_uid)
                verdict = quality.judge(finding.name, finding.flags)
                if not math.isfinite(finding.value):
                    verdict = quality.Verdict(("the measurement gave no number",), (), ())
                collected.candidates.setdefault(finding.name, []).append(
                    _Candidate(finding, image, made_by, verdict, order)
                )
                order += 1
    return collected


def _choose(
    found: Sequence[_Candidate],
) -> tuple[_Candidate | None, list[_Candidate], list[_Candidate]]:
    """(the value reported, the other reportable ones, the withheld ones)."""
    reportable = sorted(
        (c for c in found if c.verdict.reportable),
        key=lambda c: (len(c.verdict.qualifiers), c.order),
    )
    refused = [c for c in found if not c.verdict.reportable]
    if not reportable:
        return None, [], refused
    return reportable[0], reportable[1:], refused


def _sr_value(key: str, measured: catalogue.Measured, value: float, unit: str) -> float:
    converted = catalogue.in_sr_unit(key, value, unit, measured.presentation.unit)
    return measured.presentation.sr_value(abs(converted) if measured.speed else converted)


def _reported(key: str, measured: catalogue.Measured, chosen: _Candidate) -> ReportedValue:
    finding = chosen.finding
    beats = beat_marks(finding, measured, chosen.source)
    aggregation = finding.aggregation or measured.aggregation
    if len(beats) <= 1:
        aggregation = Aggregation.SINGLE
    return ReportedValue(
        key=key,
        presentation=measured.presentation,
        value=_sr_value(key, measured, finding.value, finding.unit),
        aggregation=aggregation,
        geometry=measured.geometry,
        beats=beats,
        phase=finding.cardiac_phase,
        source=chosen.source,
        algorithm=chosen.algorithm,
        qualifiers=chosen.verdict.qualifiers,
        flags=finding.flags,
    )


def _alternative(key: str, measured: catalogue.Measured, candidate: _Candidate) -> Alternative:
    finding = candidate.finding
    value = (
        _sr_value(key, measured, finding.value, finding.unit)
        if math.isfinite(finding.value)
        else math.nan
    )
    return Alternative(
        key,
        value,
        measured.presentation.display(value) if math.isfinite(value) else "no number",
        candidate.source,
        candidate.algorithm,
        candidate.verdict.withheld,
        finding.flags,
    )


def beat_marks(
    finding: Finding, measured: catalogue.Measured, source: SourceImage
) -> tuple[BeatMark, ...]:
    """Each beat's frame, caliper points and value: the finding's own beats where it gives
    them, else its frames and points grouped per frame (two points a frame for a line)."""
    if finding.beats:
        return tuple(
            BeatMark(
                beat.frame,
                tuple(beat.points) if measured.geometry is not Geometry.FRAMES else (),
                _sr_value(finding.name, measured, beat.value, finding.unit)
                if math.isfinite(beat.value)
                else None,
            )
            for beat in finding.beats
        )
    frames = list(finding.frames) or [0]
    points = list(finding.points)
    if measured.geometry is Geometry.FRAMES or not points:
        return tuple(BeatMark(frame, (), None) for frame in frames)
    per = 2 if measured.geometry is Geometry.LINE else 1
    if len(frames) > 1 and len(points) == per * len(frames):
        return tuple(
            BeatMark(frame, tuple(points[i * per : (i + 1) * per]), None)
            for i, frame in enumerate(frames)
        )
    if len(frames) == 1 and measured.geometry is Geometry.POINTS and len(points) > 1:
        return tuple(BeatMark(frames[0], (point,), None) for point in points)
    return (BeatMark(frames[0], tuple(points), None),)


# --- derived values -----------------------------------------------------------------------


def _derive(
    values: Sequence[ReportedValue], withheld_keys: set[str]
) -> tuple[list[DerivedValue], list[WithheldValue]]:
    by_key = {v.key: v for v in values}
    derived: list[DerivedValue] = []
    withheld: list[WithheldValue] = []
    for key, definition in catalogue.DERIVED.items():
        label = definition.presentation.label
        missing = [k for k in definition.inputs if k in withheld_keys]
        if missing:
            names = ", ".join(catalogue.MEASURED[k].presentation.short for k in missing)
            withheld.append(WithheldValue(key, label, (f"{names} not reported",), True))
            continue
        inputs = tuple(by_key[k] for k in definition.inputs if k in by_key)
        if len(inputs) != len(definition.inputs) or not _compatible(key, inputs):
            continue
        number = calculate(key, [i.value for i in inputs])
        if number is None or not math.isfinite(number):
            continue
        qualifiers = tuple(dict.fromkeys(q for i in inputs for q in i.qualifiers))
        derived.append(
            DerivedValue(
                key,
                definition.presentation,
                definition.presentation.sr_value(number),
                definition.formula,
                inputs,
                qualifiers,
            )
        )
    return derived, withheld


def _compatible(key: str, inputs: Sequence[ReportedValue]) -> bool:
    """E/A only from an E and an A of the same clip and engine (one recording, one reading)."""
    if key != "MV_E_A":
        return True
    e, a = inputs
    return e.source == a.source and e.algorithm == a.algorithm


def calculate(key: str, x: Sequence[float]) -> float | None:
    """The formula of catalogue.DERIVED[key] on the inputs' reported values (SR units)."""
    if key == "MV_E_A":
        return x[0] / x[1] if x[1] else None
    if key in ("TR_PG", "AV_PG"):
        metres_per_second = x[0] / 100.0
        return 4.0 * metres_per_second**2
    if key == "LV_mass":
        ivs, lvid, pw = x
        return 0.8 * 1.04 * ((ivs + lvid + pw) ** 3 - lvid**3) + 0.6
    if key == "RWT":
        pw, lvid = x
        return 2.0 * pw / lvid if lvid else None
    if key == "FS":
        lvidd, lvids = x
        return (lvidd - lvids) / lvidd * 100.0 if lvidd else None
    raise KeyError(f"no formula for derived value {key!r}")


# --- patient characteristics, heart rate ----------------------------------------------------

# Values outside these are typing errors in the header, not patients: left out, logged.
_HEIGHT_CM = (40.0, 250.0)
_WEIGHT_KG = (2.0, 400.0)
_HEART_RATE = (20.0, 300.0)


def _number(header: Dataset, keyword: str) -> float | None:
    raw = header.get(keyword)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _first(headers: Iterable[Dataset], keyword: str) -> float | None:
    for header in headers:
        value = _number(header, keyword)
        if value is not None:
            return value
    return None


def _inside(value: float | None, limits: tuple[float, float], what: str) -> float | None:
    if value is None:
        return None
    if limits[0] <= value <= limits[1]:
        return value
    logger.warning(
        "source header value outside plausible limits: left out of the report",
        extra={"attribute": what},
    )
    return None


def characteristics(headers: Sequence[Dataset]) -> list[Characteristic]:
    """Height, weight and BSA (Patient Study module) and heart rate (US Image module)."""
    found: list[Characteristic] = []
    size = _first(headers, "PatientSize")  # metres
    height = _inside(size * 100.0 if size is not None else None, _HEIGHT_CM, "PatientSize")
    weight = _inside(_first(headers, "PatientWeight"), _WEIGHT_KG, "PatientWeight")
    if height is not None:
        found.append(Characteristic("height", catalogue.HEIGHT, catalogue.HEIGHT.sr_value(height)))
    if weight is not None:
        found.append(Characteristic("weight", catalogue.WEIGHT, catalogue.WEIGHT.sr_value(weight)))
    if height is not None and weight is not None:
        h, w = found[0].value, found[1].value  # as reported, so it can be recalculated
        bsa = 0.007184 * w**0.425 * h**0.725
        found.append(
            Characteristic("bsa", catalogue.BSA, catalogue.BSA.sr_value(bsa), catalogue.BSA_FORMULA)
        )
    rates = [
        rate
        for rate in (_inside(_number(h, "HeartRate"), _HEART_RATE, "HeartRate") for h in headers)
        if rate is not None
    ]
    if rates:
        formula = None if len(set(rates)) == 1 else f"mean of {len(rates)} clips"
        rate = catalogue.HEART_RATE.sr_value(statistics.fmean(rates))
        found.append(Characteristic("heart_rate", catalogue.HEART_RATE, rate, formula))
    return found


# --- not measured -------------------------------------------------------------------------

_VIEW_WORDS = {
    View.PLAX: "parasternal long-axis",
    View.A4C: "apical four-chamber",
    View.DOPPLER: "spectral Doppler",
    View.MMODE: "M-mode",
}
_WHAT = {
    View.PLAX: "LV wall thicknesses and dimensions",
    View.A4C: "LV ejection fraction",
    View.DOPPLER: "Doppler velocities",
}


def _clip_name(image: SourceImage) -> str:
    return f"Clip {image.instance_number}" if image.instance_number is not None else "A clip"


def _not_measured(
    pairs: Sequence[SourceClip], images: Sequence[SourceImage], productive: set[str]
) -> list[str]:
    sentences = []
    for pair, image in zip(pairs, images, strict=True):
        if image.sop_instance_uid in productive:
            continue
        name, result = _clip_name(image), pair.result
        if result is None:
            sentences.append(f"{name}: not analysed.")
            continue
        view = result.view.view
        if view is View.UNKNOWN:
            sentences.append(f"{name}: view not recognised; no measurement made.")
            continue
        words = _VIEW_WORDS.get(view) or (result.view.label or "other") + " view"
        if not result.pipelines:
            sentences.append(f"{name} ({words}): no automated measurement for this view.")
            continue
        what = _WHAT.get(view, "measurements")
        statuses = {p.status for p in result.pipelines}
        if statuses <= {PipelineStatus.MODEL_NOT_INSTALLED, PipelineStatus.OK}:
            sentences.append(
                f"{name} ({words}): {what} not measured; the AI model is not installed."
            )
        else:
            sentences.append(f"{name} ({words}): {what} could not be measured on this clip.")
    return sentences


# --- the job record -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the report did with one value of one clip, for `echo-node jobs show`: the words
    of the report beside the flag identifiers and the algorithm behind them."""

    sop_instance_uid: str
    value: str  # the key, e.g. "TR_Vmax"
    decision: str  # "reported", "withheld", "not reported (another value was)", "not listed"
    shown: str  # the display string, or the sentence of a withheld value
    flags: tuple[str, ...]
    algorithm: str  # name and version


def decisions(report: Report) -> list[Decision]:
    """Every value of the report with its fate, clip by clip (the job record's view of it)."""
    rows = [
        Decision(
            v.source.sop_instance_uid,
            v.key,
            "reported",
            v.display + "".join(f" [{q}]" for q in v.qualifiers),
            v.flags,
            f"{v.algorithm.name} {v.algorithm.version_text}",
        )
        for v in report.values
    ]
    rows.extend(
        Decision(
            w.source.sop_instance_uid,
            w.key,
            "withheld",
            w.sentence,
            w.flags,
            f"{w.algorithm.name} {w.algorithm.version_text}" if w.algorithm else "",
        )
        for w in report.withheld
        if w.source is not None
    )
    rows.extend(
        Decision(
            a.source.sop_instance_uid,
            a.key,
            "not reported (another value was)",
            a.display + (f" ({'; '.join(a.withheld)})" if a.withheld else ""),
            a.flags,
            f"{a.algorithm.name} {a.algorithm.version_text}",
        )
        for a in report.alternatives
    )
    rows.extend(
        Decision(
            u.source.sop_instance_uid,
            u.name,
            "not listed",
            f"{u.value:.4g} {u.unit}",
            (),
            f"{u.algorithm.name} {u.algorithm.version_text}",
        )
        for u in report.unlisted
    )
    return rows
