"""What the PDF report says, decided from the report model and the clips: its table rows and
its pictures, as plain data for the layout (pdflayout.py) to set on pages.

Everything printed comes from the report model (report.py): each value's display string, its
full name, the convention it follows (how its beats were combined, at which phase), what made
it, the sentences that qualify it, the derived values with their formulas, and the notes on
what was not reported and why. The pictures show the same values where they were measured:
the caliper of each 2D value on its frame (the beat whose value is nearest the reported one,
as in the TID 1500 document), the LV area (A4C, beside a reported LVEF) or LVID (PLAX, beside
a reported LVIDd or LVIDs) curve of the clip with its end-diastolic and end-systolic frames,
and each Doppler strip with the envelope the classical engine traced (PipelineResult.series
"envelope_above_cm_s"/"envelope_below_cm_s", one velocity per strip column) and every beat's
peak.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from ai.clip import UltrasoundRegion
from ai.findings import Aggregation, ClipResult, PipelineStatus, View
from ai.regions import UnitError, parse_regions, row_to_velocity, spectral_region, velocity_to_row
from echo_node.results import pdfplots
from echo_node.results.catalogue import Geometry
from echo_node.results.report import (
    Algorithm,
    AlgorithmKind,
    DerivedValue,
    Report,
    ReportedValue,
    SourceImage,
)
from echo_node.results.tid1500 import drawn_beat

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
NOTHING_REPORTED = "No measurement was reported for this study."

_VIEW_WORDS = {
    View.PLAX: "parasternal long-axis",
    View.A4C: "apical four-chamber",
    View.DOPPLER: "spectral Doppler",
    View.MMODE: "M-mode",
}


@dataclass(frozen=True)
class ClipPictures:
    """A source clip with the frames kept for the report (zero-based index -> RGB)."""

    header: Dataset
    result: ClipResult | None
    frames: Mapping[int, Image] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One line of the measurements table."""

    value: str  # the display string, e.g. "TR Vmax 2.61 m/s"
    name: str  # the full clinical name
    convention: str  # how it was obtained, e.g. "highest of 3 beats (CW Doppler)"
    source: str  # the clip and what measured it
    notes: tuple[str, ...] = ()  # the sentences that qualify it


@dataclass(frozen=True)
class Picture:
    image: bytes  # PNG or JPEG
    caption: str
    wide: bool  # a full-width picture (curves, spectra) or a half-width one (frames)


@dataclass(frozen=True)
class Content:
    title: str
    patient: tuple[tuple[str, str], ...]  # (label, value) lines of the heading
    statement: str  # who made it and that nobody verified it
    rows: tuple[Row, ...]
    derived: tuple[Row, ...]
    characteristics: tuple[str, ...]
    notes: tuple[str, ...]  # what was not reported and why
    algorithms: tuple[str, ...]
    pictures: tuple[Picture, ...]


def build_content(
    report: Report, clips: Sequence[ClipPictures], *, software: str, created: str
) -> Content:
    by_uid = {str(c.header.SOPInstanceUID): c for c in clips}
    first = clips[0].header if clips else Dataset()
    notes = report.notes if report.values else (NOTHING_REPORTED, *report.notes)
    return Content(
        title="Echocardiography measurements",
        patient=_patient(first),
        statement=(
            f"Automated measurements by Echo Node {software}, {created}. Machine output, not "
            "verified by a physician."
        ),
        rows=tuple(_row(v) for v in report.values),
        derived=tuple(_derived_row(d) for d in report.derived),
        characteristics=tuple(
            f"{c.display}" + (f" ({c.formula})" if c.formula else "")
            for c in report.characteristics
        ),
        notes=notes,
        algorithms=tuple(_algorithm_line(a) for a in report.algorithms),
        pictures=(
            *_frame_pictures(report, by_uid),
            *_curve_pictures(report, by_uid),
            *_spectrum_pictures(report, by_uid),
        ),
    )


# --- the table ------------------------------------------------------------------------------


def _patient(header: Dataset) -> tuple[tuple[str, str], ...]:
    def text(keyword: str) -> str:
        value = header.get(keyword)
        return str(value).replace("^", " ").strip() if value not in (None, "") else "—"

    return (
        ("Patient", text("PatientName")),
        ("Patient ID", text("PatientID")),
        ("Birth date", _date(header.get("PatientBirthDate"))),
        ("Sex", text("PatientSex")),
        ("Study date", _date(header.get("StudyDate"))),
        ("Accession", text("AccessionNumber")),
        ("Study", text("StudyDescription")),
    )


def _date(value: object) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else "—"


def clip_name(source: SourceImage) -> str:
    number = f"Clip {source.instance_number}" if source.instance_number is not None else "Clip"
    words = _VIEW_WORDS.get(source.view)
    return f"{number} ({words})" if words else number


def convention(value: ReportedValue) -> str:
    """How the value was obtained from its beats, in words (catalogue.py's conventions)."""
    count = len(value.beats)
    combined = {
        Aggregation.MAX: f"highest of {count} beats",
        Aggregation.MEAN: f"mean of {count} beats",
        Aggregation.MEDIAN: f"median of {count} beats",
        Aggregation.RATIO: f"ratio of means over {count} beats",
    }.get(value.aggregation, "one beat")
    if value.geometry is Geometry.FRAMES and "averaged_over_clip_starts" in value.flags:
        # EchoNet-Dynamic without two whole beats: its windows over the clip, not beats.
        combined = "mean over the clip's windows"
    phase = (
        {"diastole": "at end-diastole", "systole": "at end-systole"}
        if value.geometry is Geometry.LINE
        else {"diastole": "in diastole", "systole": "in systole"}
    ).get(value.phase or "")
    mode = {"2D": "2D", "M": "M-mode", "PW": "PW Doppler", "CW": "CW Doppler"}.get(
        value.source.mode.value, "spectral Doppler"
    )
    return ", ".join(part for part in (combined, phase, mode) if part)


def _row(value: ReportedValue) -> Row:
    kind = " (AI model)" if value.algorithm.kind is AlgorithmKind.AI else ""
    return Row(
        value=value.display,
        name=value.label,
        convention=convention(value),
        source=f"{clip_name(value.source)}; {value.algorithm.name}{kind}",
        notes=value.qualifiers,
    )


def _derived_row(value: DerivedValue) -> Row:
    return Row(
        value=value.display,
        name=value.label,
        convention=value.formula,
        source="calculated from " + ", ".join(i.display for i in value.inputs),
        notes=value.qualifiers,
    )


def _algorithm_line(made_by: Algorithm) -> str:
    weights = made_by.weights_text
    return f"{made_by.name} {made_by.version_text}" + (f": {weights}" if weights else "")


# --- pictures -------------------------------------------------------------------------------


def _frame_pictures(report: Report, clips: Mapping[str, ClipPictures]) -> list[Picture]:
    """One picture per source frame with 2D calipers: every value measured on that frame."""
    marks: dict[tuple[str, int], list[pdfplots.Mark]] = {}
    names: dict[tuple[str, int], SourceImage] = {}
    for value in report.values:
        beat = drawn_beat(value)
        if value.geometry is not Geometry.LINE or beat is None:
            continue
        key = (value.source.sop_instance_uid, beat.frame)
        marks.setdefault(key, []).append(pdfplots.Mark(beat.points, value.display))
        names[key] = value.source
    pictures = []
    for (uid, frame), drawn in marks.items():
        clip = clips.get(uid)
        image = clip.frames.get(frame) if clip is not None else None
        if image is None:
            logger.info("key frame not kept: no picture", extra={"sop_instance_uid": uid})
            continue
        caption = f"{clip_name(names[(uid, frame)])}, frame {frame + 1}: " + ", ".join(
            m.label for m in drawn
        )
        pictures.append(Picture(pdfplots.frame_with_calipers(image, drawn), caption, wide=False))
    return pictures


def _curve_pictures(report: Report, clips: Mapping[str, ClipPictures]) -> list[Picture]:
    pictures = []
    for clip in clips.values():
        result = clip.result
        if result is None:
            continue
        source = next(
            (s for s in report.sources if s.sop_instance_uid == str(clip.header.SOPInstanceUID)),
            None,
        )
        if source is None:
            continue
        # A curve only beside a value of its clip that is reported: a model whose values were
        # withheld does not get its curve shown either.
        shown = {v.key for v in report.values_of(source.sop_instance_uid)}
        made = (_a4c_curve(result, clip.header) if "LVEF" in shown else None) or (
            _plax_curve(report, result, clip.header, source) if shown & {"LVIDd", "LVIDs"} else None
        )
        if made is not None:
            data, what = made
            caption = (
                f"{clip_name(source)}: {what} over the clip, end-diastole (red) and "
                "end-systole (blue)"
            )
            pictures.append(Picture(pdfplots.curve(data), caption, wide=True))
    return pictures


def _seconds(header: Dataset) -> float | None:
    try:
        frame_time = float(header.get("FrameTime") or 0.0)
    except (TypeError, ValueError):
        return None
    return frame_time / 1000.0 if frame_time > 0 else None


def _axis(frames: Sequence[float], header: Dataset) -> tuple[tuple[float, ...], str, float]:
    step = _seconds(header)
    if step is None:
        return tuple(f + 1 for f in frames), "frame", 1.0
    return tuple(f * step for f in frames), "time (s)", step


def _series(result: ClipResult, pipeline: str) -> Mapping[str, tuple[float, ...]]:
    for outcome in result.pipelines:
        if outcome.pipeline == pipeline and outcome.status is PipelineStatus.OK:
            return outcome.series
    return {}


def _a4c_curve(result: ClipResult, header: Dataset) -> tuple[pdfplots.Curve, str] | None:
    series = _series(result, "a4c")
    if "LV_area_cm2" in series:
        values, label, what = series["LV_area_cm2"], "LV area (cm²)", "LV area"
    elif "LV_area_px" in series:
        values, label, what = series["LV_area_px"], "LV area (pixels)", "LV area"
    else:
        return None
    frames = [float(i) for i in range(len(values))]
    x, x_label, step = _axis(frames, header)
    shift = 0.0 if x_label != "frame" else 1.0
    return (
        pdfplots.Curve(
            x,
            tuple(values),
            label,
            x_label,
            tuple(f * step + shift for f in series.get("ED_frames", ())),
            tuple(f * step + shift for f in series.get("ES_frames", ())),
        ),
        what,
    )


def _plax_curve(
    report: Report, result: ClipResult, header: Dataset, source: SourceImage
) -> tuple[pdfplots.Curve, str] | None:
    series = _series(result, "plax")
    if "LVID_cm" not in series or "frame" not in series:
        return None
    pairs = [
        (f, v) for f, v in zip(series["frame"], series["LVID_cm"], strict=False) if math.isfinite(v)
    ]
    if len(pairs) < 2:
        return None
    x, x_label, step = _axis([f for f, _ in pairs], header)
    shift = 0.0 if x_label != "frame" else 1.0

    def frames_of(key: str) -> tuple[float, ...]:
        value = report.value(key)
        if not isinstance(value, ReportedValue) or value.source != source:
            return ()
        return tuple(b.frame * step + shift for b in value.beats)

    curve = pdfplots.Curve(
        x, tuple(v for _, v in pairs), "LVID (cm)", x_label, frames_of("LVIDd"), frames_of("LVIDs")
    )
    return curve, "LV internal dimension"


def _spectrum_pictures(report: Report, clips: Mapping[str, ClipPictures]) -> list[Picture]:
    """Each Doppler frame with reported values: the strip, its envelope, every beat's peak."""
    peaks: dict[tuple[str, int], list[pdfplots.Mark]] = {}
    names: dict[tuple[str, int], SourceImage] = {}
    for value in report.values:
        if value.geometry is not Geometry.POINTS:
            continue
        for beat in value.beats:
            if len(beat.points) == 1:
                key = (value.source.sop_instance_uid, beat.frame)
                peaks.setdefault(key, []).append(
                    pdfplots.Mark(beat.points, value.presentation.short)
                )
                names[key] = value.source
    pictures = []
    for (uid, frame), marks in peaks.items():
        clip = clips.get(uid)
        image = clip.frames.get(frame) if clip is not None else None
        if clip is None or image is None:
            continue
        data = _strip(clip, image, frame, marks)
        if data is None:
            continue
        shown = ", ".join(v.display for v in report.values_of(uid) if v.geometry is Geometry.POINTS)
        caption = f"{clip_name(names[(uid, frame)])}, frame {frame + 1}: {shown}"
        pictures.append(Picture(pdfplots.spectrum(data), caption, wide=True))
    return pictures


def _strip(
    clip: ClipPictures, image: Image, frame: int, marks: Sequence[pdfplots.Mark]
) -> pdfplots.Spectrum | None:
    rows, columns = image.shape[:2]
    region = spectral_region(parse_regions(clip.header, rows, columns))
    if region is None:
        return None
    try:
        top = row_to_velocity(region, region.min_y0)
        bottom = row_to_velocity(region, region.max_y1 + 1)
    except UnitError:
        return None
    x0, y0 = region.min_x0, region.min_y0
    seconds = abs(region.physical_delta_x) if region.physical_units_x == 4 else None
    return pdfplots.Spectrum(
        image=image[y0 : region.max_y1 + 1, x0 : region.max_x1 + 1],
        seconds_per_column=seconds or None,
        top_velocity=top,
        bottom_velocity=bottom,
        envelope=_envelope(clip.result, region, frame),
        peaks=tuple(
            pdfplots.Mark(tuple((x - x0, y - y0) for x, y in m.points), m.label) for m in marks
        ),
    )


def _envelope(
    result: ClipResult | None, region: UltrasoundRegion, frame: int
) -> tuple[pdfplots.Point, ...]:
    """The classical engine's envelope of this frame's strip, as strip (column, row) points."""
    if result is None:
        return ()
    for outcome in result.pipelines:
        on_frame = any(frame in f.frames for f in outcome.findings)
        for name in ("envelope_above_cm_s", "envelope_below_cm_s"):
            curve = outcome.series.get(name)
            if curve is None or not on_frame or len(curve) != region.width:
                continue
            return tuple(
                (float(column), velocity_to_row(region, velocity) - region.min_y0)
                for column, velocity in enumerate(curve)
                if math.isfinite(velocity)
            )
    return ()
