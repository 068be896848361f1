"""What one clip's overlay shows, decided from the report model alone (no pixels here).

The overlay prints what the report reports and nothing else: the values measured on this clip
(report.values_of), the derived values calculated only from them (E/A, TR PG, LV mass, ...),
each as the report's display string ("E 102 cm/s", "TR Vmax 2.57 m/s"), a value the report
qualifies marked with an asterisk and its qualifier shortened in a footnote. Withheld values
and values another clip supplied are not drawn.

Calipers are drawn per beat, on the frames of that beat (BeatMark.frame):

- a 2D caliper (a LINE: two points) is drawn from the frame it was measured on through the
  frame before the value's next beat; the last (or only) beat's caliper stays one cardiac
  cycle (the median spacing of the value's beats; else the source's Heart Rate and frame time;
  else to the end of the clip), and the first beat's is drawn back over the frames before it,
  for one cycle (else from the clip's first frame): the start of a clip lies in a beat nobody
  measured, and frame 1 is what many PACS show as the thumbnail. So a cine loop shows the
  calipers through the measured beats instead of flashing for one frame; the frame each was
  measured on is tagged ED or ES in the legend and is the SC's Representative Frame;
- a Doppler peak (POINTS) is marked on its frame (the only frame of a spectral image), and only
  inside the spectral region;
- a value measured over a clip without points (LVEF) has no caliper, only its legend line.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ai.clip import UltrasoundRegion
from ai.regions import contains, is_spectral
from echo_node.results.catalogue import Geometry
from echo_node.results.report import DerivedValue, Report, ReportedValue

RGB = tuple[int, int, int]
Point = tuple[float, float]

# Saturated, light colours: far from every grey in hue and bright on the black legend
# (tests/test_overlay.py checks contrast); drawn over a black outline on the image.
PALETTE: tuple[RGB, ...] = (
    (255, 221, 0),  # yellow
    (0, 221, 255),  # cyan
    (255, 120, 255),  # magenta
    (255, 150, 40),  # orange
    (120, 255, 120),  # light green
    (255, 140, 110),  # salmon
)
TEXT: RGB = (235, 235, 235)  # title and values without a caliper
NOTE: RGB = (200, 200, 200)  # footnotes and the disclaimer
TITLE = "Echo Node measurements"
DISCLAIMER = "Not for diagnosis without review"
_PHASE_TAGS = {"diastole": "ED", "systole": "ES"}


@dataclass(frozen=True)
class Caliper:
    """One beat's caliper of a value, and the frames it is drawn on."""

    number: int  # printed beside the caliper and before the value in the legend
    colour: RGB
    geometry: Geometry  # LINE: a distance; POINTS: one mark per point
    points: tuple[Point, ...]  # source pixels (x, y)
    frame: int  # the frame it was measured on (zero-based)
    first: int  # first frame it is drawn on
    last: int  # last frame it is drawn on (inclusive)
    phase: str | None  # "ED" / "ES" for a 2D caliper whose value says its phase

    def shown_on(self, frame: int) -> bool:
        return self.first <= frame <= self.last


@dataclass(frozen=True)
class Entry:
    """A legend line: the report's display string, its caliper number and footnote marks."""

    display: str  # exactly ReportedValue.display / DerivedValue.display
    colour: RGB
    number: int | None = None  # the caliper's number; None for a value without one
    marks: str = ""  # "*", "**", ... for the footnotes that qualify it

    @property
    def text(self) -> str:
        # Two spaces: one is narrow in the small sizes of a small image ("1IVSd").
        prefix = f"{self.number}  " if self.number is not None else ""
        suffix = f" {self.marks}" if self.marks else ""
        return f"{prefix}{self.display}{suffix}"


@dataclass(frozen=True)
class PhaseFrames:
    """The frames a phase (ED or ES) was measured on, for the legend's frame tag."""

    tag: str  # "ED" / "ES"
    frames: tuple[int, ...]  # zero-based

    @property
    def text(self) -> str:
        numbers = ", ".join(str(f + 1) for f in self.frames)  # DICOM frame numbers
        return f"{self.tag}: frame{'s' if len(self.frames) > 1 else ''} {numbers}"


@dataclass(frozen=True)
class OverlayPlan:
    sop_instance_uid: str
    frame_count: int
    frame_time_ms: float | None
    entries: tuple[Entry, ...]
    footnotes: tuple[str, ...]  # "* Flow identified by its Doppler pattern"
    calipers: tuple[Caliper, ...]
    phases: tuple[PhaseFrames, ...]
    values: tuple[ReportedValue, ...]  # what it prints, for provenance
    derived: tuple[DerivedValue, ...]

    @property
    def empty(self) -> bool:
        return not self.entries

    def calipers_on(self, frame: int) -> tuple[Caliper, ...]:
        return tuple(c for c in self.calipers if c.shown_on(frame))

    @property
    def representative_frame(self) -> int | None:
        """The frame a PACS should show first (zero-based): the measured frame with the most
        calipers measured on it (so they lie on its anatomy), then the most shown; None
        without calipers."""
        measured = sorted({c.frame for c in self.calipers})
        if not measured:
            return None

        def rank(frame: int) -> tuple[int, int, int]:
            own = sum(c.frame == frame for c in self.calipers)
            return own, len(self.calipers_on(frame)), -frame

        return max(measured, key=rank)


def plan_overlay(
    report: Report,
    sop_instance_uid: str,
    frame_count: int,
    *,
    frame_time_ms: float | None = None,
    heart_rate_bpm: float | None = None,
    regions: Sequence[UltrasoundRegion] = (),
) -> OverlayPlan:
    """The overlay of the clip `sop_instance_uid` (`frame_count` frames) from `report`;
    `regions` its ultrasound regions (a Doppler peak is marked only inside the spectrum)."""
    values = report.values_of(sop_instance_uid)
    spectra = [r for r in regions if is_spectral(r)]
    derived = tuple(d for d in report.derived if d.inputs and all(i in values for i in d.inputs))
    notes = _footnotes([*values, *derived])
    cycle = _cycle_frames(frame_time_ms, heart_rate_bpm)
    entries: list[Entry] = []
    calipers: list[Caliper] = []
    number = 0
    for value in values:
        drawn = _drawable(value, frame_count, spectra)
        if drawn:
            number += 1
            colour = PALETTE[(number - 1) % len(PALETTE)]
            calipers.extend(_calipers(value, drawn, number, colour, frame_count, cycle))
            entries.append(Entry(value.display, colour, number, _marks(value.qualifiers, notes)))
        else:
            entries.append(Entry(value.display, TEXT, None, _marks(value.qualifiers, notes)))
    entries.extend(Entry(d.display, TEXT, None, _marks(d.qualifiers, notes)) for d in derived)
    return OverlayPlan(
        sop_instance_uid=sop_instance_uid,
        frame_count=frame_count,
        frame_time_ms=frame_time_ms,
        entries=tuple(entries),
        footnotes=tuple(f"{'*' * (i + 1)} {shorten(q)}" for i, q in enumerate(notes)),
        calipers=tuple(calipers),
        phases=_phases(calipers),
        values=values,
        derived=derived,
    )


def shorten(qualifier: str) -> str:
    """A qualifier sentence cut to its first clause, for a legend footnote:
    "Clip shorter than two beats: end-diastole/..." -> "Clip shorter than two beats"."""
    head = re.split(r"[:;]|\s\(", qualifier, maxsplit=1)[0]
    return head.strip().rstrip(".")


def _footnotes(items: Sequence[ReportedValue | DerivedValue]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(q for item in items for q in item.qualifiers))


def _marks(qualifiers: Sequence[str], notes: Sequence[str]) -> str:
    return " ".join("*" * (notes.index(q) + 1) for q in qualifiers)


def _drawable(
    value: ReportedValue, frame_count: int, spectra: Sequence[UltrasoundRegion]
) -> list[tuple[int, tuple[Point, ...]]]:
    """(frame, points) of each beat that has a caliper to draw on a frame of this clip; a
    Doppler peak only where it lies in the spectrum (when the clip says where that is)."""
    if value.geometry is Geometry.FRAMES:
        return []
    need = 2 if value.geometry is Geometry.LINE else 1
    beats = []
    for beat in value.beats:
        points = beat.points
        if value.geometry is Geometry.POINTS and spectra:
            points = tuple(p for p in points if any(contains(r, *p) for r in spectra))
        if 0 <= beat.frame < frame_count and len(points) >= need:
            beats.append((beat.frame, points))
    return sorted(beats)


def _cycle_frames(frame_time_ms: float | None, heart_rate_bpm: float | None) -> int | None:
    if not frame_time_ms or not heart_rate_bpm or frame_time_ms <= 0 or heart_rate_bpm <= 0:
        return None
    frames = 60_000.0 / (heart_rate_bpm * frame_time_ms)
    return max(1, round(frames)) if math.isfinite(frames) else None


def _calipers(
    value: ReportedValue,
    beats: Sequence[tuple[int, tuple[Point, ...]]],
    number: int,
    colour: RGB,
    frame_count: int,
    cycle: int | None,
) -> list[Caliper]:
    """Each beat's caliper, held from its frame to the next beat's (see the module doc)."""
    starts = sorted({frame for frame, _ in beats})
    spacing = [b - a for a, b in itertools.pairwise(starts)]
    length = round(statistics.median(spacing)) if spacing else cycle
    phase = _PHASE_TAGS.get(value.phase or "") if value.geometry is Geometry.LINE else None
    calipers = []
    for frame, points in beats:
        later = [s for s in starts if s > frame]
        first, last = frame, frame  # a Doppler peak belongs to its frame only
        if value.geometry is Geometry.LINE:
            if later:
                last = later[0] - 1
            elif length is not None:
                last = frame + length - 1
            else:
                last = frame_count - 1
            if frame == starts[0]:
                first = max(0, frame - length) if length is not None else 0
        last = min(last, frame_count - 1)
        calipers.append(Caliper(number, colour, value.geometry, points, frame, first, last, phase))
    return calipers


def _phases(calipers: Sequence[Caliper]) -> tuple[PhaseFrames, ...]:
    found: dict[str, set[int]] = {}
    for caliper in calipers:
        if caliper.phase is not None:
            found.setdefault(caliper.phase, set()).add(caliper.frame)
    return tuple(
        PhaseFrames(tag, tuple(sorted(found[tag]))) for tag in ("ED", "ES") if tag in found
    )
