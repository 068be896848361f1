"""The study's measurements as a TID 5200 Comprehensive SR (PS3.16 TID 5200/5202/5203), or as
TID 5300 with `template="5300"` (echo_node/results/sr5300.py).

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

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ai.findings import ClipResult, View
from echo_node.results import codes, sr5300
from echo_node.results.device import DeviceInfo, contributing_equipment
from echo_node.results.patient import copy_patient_and_study
from echo_node.results.srcontent import (
    Candidate,
    Pair,
    SourceClip,
    Tree,
    chosen_measurements,
    evidence,
    image_mode,
    modifier,
    node_observer,
    note,
    pair_results,
    source_references,
    sr_value,
)

logger = logging.getLogger(__name__)

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SERIES_DESCRIPTION = "Echo Node report"
TEMPLATES = (codes.TEMPLATE_ID_ECHO, codes.TEMPLATE_ID_SIMPLIFIED_ECHO)

_VIEW_CODES = {View.PLAX: codes.VIEW_PLAX, View.A4C: codes.VIEW_A4C}

__all__ = ["COMPREHENSIVE_SR", "SERIES_DESCRIPTION", "TEMPLATES", "SourceClip", "build_sr"]


@dataclass(frozen=True)
class _Measurement:
    candidate: Candidate
    coding: codes.MeasurementCoding
    mode: Code


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
    `template` is "5200" (sections of TID 5200) or "5300" (TID 5300 Simplified Echo).
    """
    if template not in TEMPLATES:
        raise ValueError(f"template: one of {', '.join(TEMPLATES)}, got {template!r}")
    if not sources:
        raise ValueError("sources: at least one source instance is needed")
    pairs = pair_results(sources, results)
    study_uid = sources[0].header.StudyInstanceUID
    for source in sources:
        if source.header.StudyInstanceUID != study_uid:
            raise ValueError("sources: all instances must belong to one study")
    if predecessor is not None:
        if predecessor.get("StudyInstanceUID") != study_uid:
            raise ValueError("predecessor: not an SR of this study")
        if "SOPClassUID" not in predecessor or "SeriesInstanceUID" not in predecessor:
            raise ValueError("predecessor: needs SOPClassUID and SeriesInstanceUID")

    if template == codes.TEMPLATE_ID_SIMPLIFIED_ECHO:
        tree = sr5300.content(pairs, node)
    else:
        tree = _content_5200(pairs, node)
    with warnings.catch_warnings():
        # highdicom warns about odd person names and quotes them: patient data in a log.
        warnings.simplefilter("ignore", UserWarning)
        sr = hd.sr.ComprehensiveSR(
            evidence=[evidence(header) for header, _ in pairs],
            content=tree.root,
            series_instance_uid=series_uid or generate_uid(),
            series_number=series_number,
            sop_instance_uid=instance_uid or generate_uid(),
            instance_number=instance_number,
            manufacturer=node.manufacturer,
            is_complete=True,
            is_verified=False,  # machine output: nobody has signed it
            previous_versions=[predecessor] if predecessor is not None else None,
            contributing_equipment=contributing_equipment(tree.provenances),
            manufacturer_model_name=node.model_name,
            software_versions=node.software_version,
            series_description=SERIES_DESCRIPTION,
        )
    copy_patient_and_study(sr, pairs[0][0])
    # Preliminary Flag is Type 3; highdicom writes PRELIMINARY for non-final documents, which
    # some receivers read as "ignore". Completion/Verification flags say what is meant.
    if "PreliminaryFlag" in sr:
        del sr.PreliminaryFlag
    if tree.local_codes:
        sr5300.declare_local_codes(sr)
    logger.info(
        "built SR %s (TID %s) for study %s: %d measurements, %d notes",
        sr.SOPInstanceUID,
        template,
        study_uid,
        tree.written,
        len(tree.notes),
    )
    return sr


def _content_5200(pairs: Sequence[Pair], node: DeviceInfo) -> Tree:
    """The TID 5200 tree: sections by Finding Site, measurement groups by image mode."""
    measurements, notes = chosen_measurements(
        pairs,
        codes.FINDING_CODING,
        codes.TEMPLATE_ID_ECHO,
        build=lambda candidate, coding: _Measurement(
            candidate, coding, image_mode(candidate.result, coding.default_mode)
        ),
        key=lambda m: (
            m.coding.section.value,
            m.coding.concept.value,
            m.coding.flow_direction and m.coding.flow_direction.value,
            m.coding.finding_site and m.coding.finding_site.value,
        ),
        of=lambda m: m.candidate,
        unit_of=lambda m: m.coding.unit,
    )
    root = hd.sr.ContainerContentItem(
        name=codes.ADULT_ECHO_REPORT, template_id=codes.TEMPLATE_ID_ECHO
    )
    root.ContentSequence = DicomSequence(
        [
            *node_observer(node),
            *(note(text) for text in notes),
            *_sections(measurements),
        ]
    )
    provenances = tuple(m.candidate.finding.provenance for m in measurements)
    return Tree(root, provenances, len(measurements), tuple(notes))


def _sections(measurements: Sequence[_Measurement]) -> Iterable[Dataset]:
    for section in codes.SECTION_ORDER:
        in_section = [m for m in measurements if m.coding.section == section]
        if not in_section:
            continue
        findings = hd.sr.ContainerContentItem(
            name=codes.FINDINGS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        items: list[Dataset] = [modifier(codes.FINDING_SITE, section)]
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
                    modifier(codes.IMAGE_MODE, mode),
                    *(_num(m) for m in in_section if m.mode == mode),
                ]
            )
            items.append(group)
        findings.ContentSequence = DicomSequence(items)
        yield findings


def _num(m: _Measurement) -> hd.sr.NumContentItem:
    finding, coding = m.candidate.finding, m.coding
    num = hd.sr.NumContentItem(
        name=coding.concept,
        value=sr_value(finding, coding.unit),
        unit=coding.unit,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    children: list[Dataset] = []
    view = _VIEW_CODES.get(m.candidate.result.view.view)
    if view is not None:
        children.append(modifier(codes.IMAGE_VIEW, view))
    if coding.cardiac_phase is not None:
        children.append(modifier(codes.CARDIAC_CYCLE_POINT, coding.cardiac_phase))
    if coding.flow_direction is not None:
        children.append(modifier(codes.FLOW_DIRECTION, coding.flow_direction))
    if coding.finding_site is not None:
        children.append(modifier(codes.FINDING_SITE, coding.finding_site))
    children.extend(
        hd.sr.AlgorithmIdentification(
            name=finding.provenance.name, version=finding.provenance.version
        )
    )
    children.extend(source_references(finding, m.candidate.source))
    num.ContentSequence = DicomSequence(children)
    return num
