"""What both SR templates (TID 5200 and TID 5300) share: the findings worth writing, the notes on
what was not measured, the device observer, notes and the INFERRED FROM source references.

The template modules decide how a finding is coded and where it goes in the tree; everything
about which values exist, which one wins, and where each was measured is decided here once.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from ai.findings import ClipResult, Finding, PipelineStatus, Provenance, View
from echo_node.results import codes
from echo_node.results.device import DeviceInfo

logger = logging.getLogger(__name__)

# Type 2 attributes highdicom reads from the first evidence instance; a source may lack them.
_REQUIRED_EVIDENCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)

# Finding.unit -> (SR unit value, factor): the AI may report in any of these.
_UNIT_FACTORS = {
    ("cm", "cm"): 1.0,
    ("mm", "cm"): 0.1,
    ("%", "%"): 1.0,
    ("cm/s", "cm/s"): 1.0,
    ("m/s", "cm/s"): 100.0,
    ("1", "{ratio}"): 1.0,
    ("{ratio}", "{ratio}"): 1.0,
}
_VELOCITY_UNITS = ("cm/s", "m/s")

Pair = tuple[Dataset, ClipResult | None]
T = TypeVar("T")  # a template's measurement (a finding with its coding)
C = TypeVar("C")  # a template's coding of one finding name


@dataclass(frozen=True)
class SourceClip:
    """One source instance: its header (read with stop_before_pixels) and what ai/ found."""

    header: Dataset
    result: ClipResult | None = None


@dataclass(frozen=True)
class Candidate:
    """One finite finding of a pipeline that ran, with the clip it was measured on."""

    finding: Finding
    source: Dataset
    result: ClipResult


@dataclass(frozen=True)
class Tree:
    """A template's content tree and what the document around it needs to know."""

    root: Dataset  # the root CONTAINER with its template identifier
    provenances: tuple[Provenance, ...]  # what produced the written values
    written: int  # measurements written
    notes: tuple[str, ...]  # what was not measured or not reported, and why
    local_codes: bool = False  # whether a code of the node's own (99ECHONODE) scheme is used


def pair_results(sources: Sequence[SourceClip], results: Sequence[ClipResult] | None) -> list[Pair]:
    by_uid = {r.sop_instance_uid: r for r in results or ()}
    known = {s.header.SOPInstanceUID for s in sources}
    unknown = [uid for uid in by_uid if uid not in known]
    if unknown:
        raise ValueError(f"results: no source instance for SOP Instance UID(s) {unknown}")
    return [(s.header, s.result or by_uid.get(s.header.SOPInstanceUID)) for s in sources]


def evidence(header: Dataset) -> Dataset:
    """A header-only copy with the attributes highdicom reads from evidence."""
    copied = Dataset()
    for element in header:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            copied.add(copy.deepcopy(element))
    for keyword in _REQUIRED_EVIDENCE:
        if keyword not in copied:
            setattr(copied, keyword, None)
    return copied


def candidates(pairs: Sequence[Pair]) -> tuple[list[Candidate], list[str]]:
    """The finite findings of pipelines that ran, and notes on everything that was not measured."""
    found: list[Candidate] = []
    notes: list[str] = []
    for header, result in pairs:
        uid = header.SOPInstanceUID
        if result is None:
            notes.append(f"Instance {uid}: not analysed.")
            continue
        if not result.pipelines:
            decision = result.view
            notes.append(
                f"Instance {uid}: view {decision.view.value} (decided by {decision.decided_by})"
                f"; no measurement pipeline ran for it. {decision.reason}".strip()
            )
        for pipeline in result.pipelines:
            if pipeline.status is not PipelineStatus.OK:
                notes.append(
                    f"Pipeline {pipeline.pipeline} did not run on instance {uid}: "
                    f"{pipeline.status.value}. {pipeline.message}".strip()
                )
                continue
            for finding in pipeline.findings:
                if math.isfinite(finding.value):
                    found.append(Candidate(finding, header, result))
                else:
                    notes.append(f"Finding {finding.name} of {uid} has no finite value.")
    return found, notes


def uncoded_note(candidate: Candidate, template: str) -> str:
    return (
        f"Finding {candidate.finding.name} of {candidate.source.SOPInstanceUID} has no "
        f"TID {template} code; not reported."
    )


def chosen_measurements(
    pairs: Sequence[Pair],
    coding: Mapping[str, C],
    template: str,
    build: Callable[[Candidate, C], T],
    key: Callable[[T], Hashable],
    of: Callable[[T], Candidate],
    unit_of: Callable[[T], Code],
) -> tuple[list[T], list[str]]:
    """What a template writes: each finding with a code in `coding` built into a measurement,
    one per `key`; and its notes, in order: what was not measured, what has no code in the
    template, every value left out for another, and the quality flags of those written."""
    found, notes = candidates(pairs)
    coded: list[T] = []
    for candidate in found:
        coded_as = coding.get(candidate.finding.name)
        if coded_as is None:
            notes.append(uncoded_note(candidate, template))
        else:
            coded.append(build(candidate, coded_as))
    measurements, dropped = one_per_key(coded, key, of, unit_of)
    notes.extend(dropped)
    notes.extend(flag_notes([of(m) for m in measurements]))
    return measurements, notes


def one_per_key(
    items: Sequence[T],
    key: Callable[[T], Hashable],
    of: Callable[[T], Candidate],
    unit_of: Callable[[T], Code],
) -> tuple[list[T], list[str]]:
    """Exactly one value per measurement (receivers cannot choose between two), and a note
    naming every value left out with what made it, so none is dropped silently.

    The first value without quality flags wins, else the first; order is the sources' order and,
    within a clip, the pipelines' (the classical Doppler engine before the neural models).
    """
    chosen: dict[Hashable, T] = {}
    others: dict[Hashable, list[T]] = {}
    for item in items:
        k = key(item)
        kept = chosen.get(k)
        if kept is None:
            chosen[k] = item
            continue
        if of(kept).finding.flags and not of(item).finding.flags:
            chosen[k], item = item, kept
        others.setdefault(k, []).append(item)

    def described(item: T) -> str:
        candidate, unit = of(item), unit_of(item)
        provenance = candidate.finding.provenance
        return (
            f"{sr_value(candidate.finding, unit):.6g} {unit.value} by {provenance.name} "
            f"{provenance.version} on {candidate.source.SOPInstanceUID}"
        )

    notes = [
        f"{of(chosen[k]).finding.name}: the value written is {described(chosen[k])}; "
        + "; ".join(f"not written: {described(item)}" for item in left_out)
        + "."
        for k, left_out in others.items()
    ]
    return list(chosen.values()), notes


def flag_notes(written: Sequence[Candidate]) -> list[str]:
    return [
        f"{c.finding.name} of {c.source.SOPInstanceUID} has quality flags: "
        f"{', '.join(c.finding.flags)}."
        for c in written
        if c.finding.flags
    ]


def image_mode(result: ClipResult, default_mode: Code | None) -> Code:
    view = result.view
    if view.view is View.MMODE:
        return codes.MODE_M
    if view.view is View.DOPPLER:
        if view.doppler_mode == "CW":
            return codes.MODE_DOPPLER_CW
        if view.doppler_mode == "PW":
            return codes.MODE_DOPPLER_PULSED
        return default_mode or codes.MODE_DOPPLER_PULSED
    return codes.MODE_2D


def sr_value(finding: Finding, unit: Code) -> float:
    """The finding's value in the unit the SR writes."""
    factor = _UNIT_FACTORS.get((finding.unit, unit.value))
    if factor is None:
        raise ValueError(
            f"results: {finding.name} is in {finding.unit!r}, which cannot be written "
            f"as {unit.value!r}"
        )
    value = finding.value * factor
    if unit.value in _VELOCITY_UNITS:
        # A peak velocity is a speed: the pipelines keep the sign of the image calibration
        # (a TR jet is negative), while the report carries the direction in the Flow Direction
        # modifier or the concept itself, as reading systems expect.
        value = abs(value)
    return round(value, 6)


def device_observer(
    uid: str, name: str, manufacturer: str | None, model_name: str
) -> hd.sr.ObserverContext:
    """TID 1002 observer context with a TID 1004 device observer."""
    return hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept.from_code(codes.OBSERVER_TYPE_DEVICE),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid, name=name, manufacturer_name=manufacturer, model_name=model_name
        ),
    )


def node_observer(node: DeviceInfo) -> hd.sr.ObserverContext:
    return device_observer(node.device_uid, node.ae_title, node.manufacturer, node.model_name)


def note(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=codes.COMMENT, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


def modifier(name: Code, value: Code) -> hd.sr.CodeContentItem:
    return hd.sr.CodeContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD
    )


def source_references(finding: Finding, source: Dataset) -> list[Dataset]:
    """INFERRED FROM the caliper points on each source frame they were placed on, or the source
    frames alone (TID 320 with $Purpose = Source of Measurement).

    A SCOORD is selected from exactly one frame, so a value measured on several frames (the
    median over beats) gets one SCOORD per frame with that frame's points: one polyline across
    frames would draw a caliper that exists on none of them.
    """
    multi_frame = int(source.get("NumberOfFrames", 1) or 1) > 1
    frames = [f + 1 for f in finding.frames] if multi_frame else []
    if not finding.points:
        return [
            hd.sr.ImageContentItem(
                name=codes.SOURCE_OF_MEASUREMENT,
                referenced_sop_class_uid=source.SOPClassUID,
                referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=frames or None,
                relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
            )
        ]
    points = np.asarray(finding.points, dtype=np.float64)
    groups: list[tuple[int | None, npt.NDArray[np.float64]]]
    if len(frames) > 1 and len(points) % len(frames) == 0:
        size = len(points) // len(frames)
        groups = [(frame, points[k * size : (k + 1) * size]) for k, frame in enumerate(frames)]
    else:  # one frame (or a single-frame image): every point is on it
        groups = [(frames[0] if frames else None, points)]
    return [_scoord(group, frame, source) for frame, group in groups]


def _scoord(points: npt.NDArray[np.float64], frame: int | None, source: Dataset) -> Dataset:
    # One point; two are a caliper line; more on one frame are separate marks (e.g. the peak
    # of each Doppler beat), not a path.
    kind = {1: hd.sr.GraphicTypeValues.POINT, 2: hd.sr.GraphicTypeValues.POLYLINE}.get(
        len(points), hd.sr.GraphicTypeValues.MULTIPOINT
    )
    scoord = hd.sr.ScoordContentItem(
        name=codes.SOURCE_OF_MEASUREMENT,
        graphic_type=kind,
        graphic_data=points,
        relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
    )
    scoord.ContentSequence = DicomSequence(
        [
            hd.sr.ImageContentItem(
                name=codes.SOURCE_OF_MEASUREMENT,
                referenced_sop_class_uid=source.SOPClassUID,
                referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=frame,
                relationship_type=hd.sr.RelationshipTypeValues.SELECTED_FROM,
            )
        ]
    )
    return scoord
