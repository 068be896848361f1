"""The study's measurements as a TID 5200 Comprehensive SR (PS3.16 TID 5200/5202/5203).

highdicom has no echo template, so the tree is composed from its content items:

    CONTAINER (125200 DCM) Adult Echocardiography Procedure Report   [template 5200]
      HAS OBS CONTEXT  TID 1002/1004 device observer (the node)
      CONTAINS TEXT (121106 DCM) Comment       -- pipelines that did not run, unknown views
      CONTAINS CONTAINER (121070 DCM) Findings                        -- one per section
        HAS CONCEPT MOD CODE Finding Site = Left/Right Ventricle, Left Atrium, Aortic /
                                            Mitral / Tricuspid Valve, Aorta (TID 5200 order)
        CONTAINS CONTAINER (125007 DCM) Measurement Group             -- one per image mode
          HAS CONCEPT MOD CODE Image Mode
          CONTAINS NUM <LOINC concept> <value> <UCUM unit>
            HAS CONCEPT MOD  Image View, Cardiac Cycle Point, Direction of Flow,
                             Algorithm Name / Version (TID 4019)
            INFERRED FROM SCOORD POLYLINE (caliper points, source pixels)
              SELECTED FROM IMAGE <source SOP instance, frame>

Image and coordinate references hang under the NUM because INFERRED FROM may not leave a
CONTAINER in a Comprehensive SR (PS3.3 Table A.35.3-2).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ai.findings import ClipResult, Finding, PipelineStatus, View
from echo_node.results import codes
from echo_node.results.device import DeviceInfo, contributing_equipment
from echo_node.results.patient import copy_patient_and_study

logger = logging.getLogger(__name__)

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SERIES_DESCRIPTION = "Echo Node report"

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

_VIEW_CODES = {View.PLAX: codes.VIEW_PLAX, View.A4C: codes.VIEW_A4C}

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


@dataclass(frozen=True)
class SourceClip:
    """One source instance: its header (read with stop_before_pixels) and what ai/ found."""

    header: Dataset
    result: ClipResult | None = None


@dataclass(frozen=True)
class _Measurement:
    finding: Finding
    coding: codes.MeasurementCoding
    mode: Code
    source: Dataset
    view: View


def build_sr(
    sources: Sequence[SourceClip],
    results: Sequence[ClipResult] | None = None,
    *,
    node: DeviceInfo,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    series_number: int = 901,
    instance_number: int = 1,
    predecessor: Dataset | None = None,
    template: str = "5200",
) -> Dataset:
    """Build one Comprehensive SR for a study run.

    Each source's ClipResult is `SourceClip.result`, or else the item of `results` with its SOP
    Instance UID. `predecessor` is an earlier SR of this study that this one supersedes.
    Only TID 5200 is written; the TID 5300 layout is not implemented.
    """
    if template != codes.TEMPLATE_ID_ECHO:
        raise ValueError(f"template: only '5200' is implemented, got {template!r}")
    if not sources:
        raise ValueError("sources: at least one source instance is needed")
    pairs = _pair_results(sources, results)
    study_uid = sources[0].header.StudyInstanceUID
    for source in sources:
        if source.header.StudyInstanceUID != study_uid:
            raise ValueError("sources: all instances must belong to one study")
    if predecessor is not None:
        if predecessor.get("StudyInstanceUID") != study_uid:
            raise ValueError("predecessor: not an SR of this study")
        if "SOPClassUID" not in predecessor or "SeriesInstanceUID" not in predecessor:
            raise ValueError("predecessor: needs SOPClassUID and SeriesInstanceUID")

    measurements, notes = _collect(pairs)
    root = hd.sr.ContainerContentItem(
        name=codes.ADULT_ECHO_REPORT, template_id=codes.TEMPLATE_ID_ECHO
    )
    root.ContentSequence = DicomSequence(
        [
            *_observer_context(node),
            *(_text(note) for note in notes),
            *_sections(measurements),
        ]
    )
    with warnings.catch_warnings():
        # highdicom warns about odd person names and quotes them: patient data in a log.
        warnings.simplefilter("ignore", UserWarning)
        sr = hd.sr.ComprehensiveSR(
            evidence=[_evidence(header) for header, _ in pairs],
            content=root,
            series_instance_uid=series_uid or generate_uid(),
            series_number=series_number,
            sop_instance_uid=instance_uid or generate_uid(),
            instance_number=instance_number,
            manufacturer=node.manufacturer,
            is_complete=True,
            is_verified=False,  # machine output: nobody has signed it
            previous_versions=[predecessor] if predecessor is not None else None,
            contributing_equipment=contributing_equipment(
                m.finding.provenance for m in measurements
            ),
            manufacturer_model_name=node.model_name,
            software_versions=node.software_version,
            series_description=SERIES_DESCRIPTION,
        )
    copy_patient_and_study(sr, pairs[0][0])
    # Preliminary Flag is Type 3; highdicom writes PRELIMINARY for non-final documents, which
    # some receivers read as "ignore". Completion/Verification flags say what is meant.
    if "PreliminaryFlag" in sr:
        del sr.PreliminaryFlag
    logger.info(
        "built SR %s for study %s: %d measurements, %d notes",
        sr.SOPInstanceUID,
        study_uid,
        len(measurements),
        len(notes),
    )
    return sr


def _pair_results(
    sources: Sequence[SourceClip], results: Sequence[ClipResult] | None
) -> list[tuple[Dataset, ClipResult | None]]:
    by_uid = {r.sop_instance_uid: r for r in results or ()}
    known = {s.header.SOPInstanceUID for s in sources}
    unknown = [uid for uid in by_uid if uid not in known]
    if unknown:
        raise ValueError(f"results: no source instance for SOP Instance UID(s) {unknown}")
    return [(s.header, s.result or by_uid.get(s.header.SOPInstanceUID)) for s in sources]


def _evidence(header: Dataset) -> Dataset:
    """A header-only copy with the attributes highdicom reads from evidence."""
    evidence = Dataset()
    for element in header:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            evidence.add(copy.deepcopy(element))
    for keyword in _REQUIRED_EVIDENCE:
        if keyword not in evidence:
            setattr(evidence, keyword, None)
    return evidence


def _collect(
    pairs: Sequence[tuple[Dataset, ClipResult | None]],
) -> tuple[list[_Measurement], list[str]]:
    """The measurements to write (one per concept) and the notes on what was not measured."""
    candidates: list[_Measurement] = []
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
                coding = codes.FINDING_CODING.get(finding.name)
                if coding is None:
                    notes.append(f"Finding {finding.name} of {uid} has no code; not reported.")
                elif not math.isfinite(finding.value):
                    notes.append(f"Finding {finding.name} of {uid} has no finite value.")
                else:
                    mode = _image_mode(result, coding)
                    candidates.append(_Measurement(finding, coding, mode, header, result.view.view))
    measurements = _one_per_concept(candidates)
    for m in measurements:
        if m.finding.flags:
            notes.append(
                f"{m.finding.name} of {m.source.SOPInstanceUID} has quality flags: "
                f"{', '.join(m.finding.flags)}."
            )
    return measurements, notes


def _one_per_concept(candidates: Sequence[_Measurement]) -> list[_Measurement]:
    """Exactly one value per measurement: receivers cannot choose between two.

    The first value without quality flags wins, else the first; order is the sources' order.
    """
    chosen: dict[tuple[str, str, str | None], _Measurement] = {}
    for m in candidates:
        direction = m.coding.flow_direction
        key = (m.coding.section.value, m.coding.concept.value, direction and direction.value)
        kept = chosen.get(key)
        if kept is None or (kept.finding.flags and not m.finding.flags):
            chosen[key] = m
        if kept is not None:
            logger.info(
                "SR keeps one %s of %s and %s",
                m.finding.name,
                kept.source.SOPInstanceUID,
                m.source.SOPInstanceUID,
            )
    return list(chosen.values())


def _image_mode(result: ClipResult, coding: codes.MeasurementCoding) -> Code:
    view = result.view
    if view.view is View.MMODE:
        return codes.MODE_M
    if view.view is View.DOPPLER:
        if view.doppler_mode == "CW":
            return codes.MODE_DOPPLER_CW
        if view.doppler_mode == "PW":
            return codes.MODE_DOPPLER_PULSED
        return coding.default_mode or codes.MODE_DOPPLER_PULSED
    return codes.MODE_2D


def _observer_context(node: DeviceInfo) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept.from_code(codes.OBSERVER_TYPE_DEVICE),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=node.device_uid,
            name=node.ae_title,
            manufacturer_name=node.manufacturer,
            model_name=node.model_name,
        ),
    )


def _text(note: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=codes.COMMENT, value=note, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


def _sections(measurements: Sequence[_Measurement]) -> Iterable[Dataset]:
    for section in codes.SECTION_ORDER:
        in_section = [m for m in measurements if m.coding.section == section]
        if not in_section:
            continue
        findings = hd.sr.ContainerContentItem(
            name=codes.FINDINGS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        items: list[Dataset] = [_code(codes.FINDING_SITE, section)]
        modes: list[Code] = []
        for m in in_section:
            if m.mode not in modes:
                modes.append(m.mode)
        for mode in modes:
            group = hd.sr.ContainerContentItem(
                name=codes.MEASUREMENT_GROUP,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
            group.ContentSequence = DicomSequence(
                [
                    _code(codes.IMAGE_MODE, mode),
                    *(_num(m) for m in in_section if m.mode == mode),
                ]
            )
            items.append(group)
        findings.ContentSequence = DicomSequence(items)
        yield findings


def _code(name: Code, value: Code) -> hd.sr.CodeContentItem:
    return hd.sr.CodeContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD
    )


_VELOCITY_UNITS = ("cm/s", "m/s")


def _num(m: _Measurement) -> hd.sr.NumContentItem:
    finding, coding = m.finding, m.coding
    factor = _UNIT_FACTORS.get((finding.unit, coding.unit.value))
    if factor is None:
        raise ValueError(
            f"results: {finding.name} is in {finding.unit!r}, which cannot be written "
            f"as {coding.unit.value!r}"
        )
    value = finding.value * factor
    if coding.unit.value in _VELOCITY_UNITS:
        # A peak velocity is a speed: the pipelines keep the sign of the image calibration
        # (a TR jet is negative), while the report carries the direction in the Flow Direction
        # modifier or the concept itself, as reading systems expect.
        value = abs(value)
    num = hd.sr.NumContentItem(
        name=coding.concept,
        value=round(value, 6),
        unit=coding.unit,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    children: list[Dataset] = []
    view = _VIEW_CODES.get(m.view)
    if view is not None:
        children.append(_code(codes.IMAGE_VIEW, view))
    if coding.cardiac_phase is not None:
        children.append(_code(codes.CARDIAC_CYCLE_POINT, coding.cardiac_phase))
    if coding.flow_direction is not None:
        children.append(_code(codes.FLOW_DIRECTION, coding.flow_direction))
    children.extend(
        hd.sr.AlgorithmIdentification(
            name=finding.provenance.name, version=finding.provenance.version
        )
    )
    children.append(_source_reference(finding, m.source))
    num.ContentSequence = DicomSequence(children)
    return num


def _source_reference(finding: Finding, source: Dataset) -> Dataset:
    """INFERRED FROM the caliper points on the source frame, or the source frames alone."""
    multi_frame = int(source.get("NumberOfFrames", 1) or 1) > 1
    frames = [f + 1 for f in finding.frames] if multi_frame else []
    if not finding.points:
        return hd.sr.ImageContentItem(
            name=codes.SOURCE_OF_MEASUREMENT,
            referenced_sop_class_uid=source.SOPClassUID,
            referenced_sop_instance_uid=source.SOPInstanceUID,
            referenced_frame_numbers=frames or None,
            relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
        )
    # A SCOORD is selected from exactly one image (frame): the first frame the finding names.
    points = np.asarray(finding.points, dtype=np.float64)
    scoord = hd.sr.ScoordContentItem(
        name=codes.SOURCE_OF_MEASUREMENT,
        graphic_type=(
            hd.sr.GraphicTypeValues.POINT if len(points) == 1 else hd.sr.GraphicTypeValues.POLYLINE
        ),
        graphic_data=points,
        relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
    )
    scoord.ContentSequence = DicomSequence(
        [
            hd.sr.ImageContentItem(
                name=codes.SOURCE_OF_MEASUREMENT,
                referenced_sop_class_uid=source.SOPClassUID,
                referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=frames[0] if frames else None,
                relationship_type=hd.sr.RelationshipTypeValues.SELECTED_FROM,
            )
        ]
    )
    return scoord
