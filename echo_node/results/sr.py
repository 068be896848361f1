"""The study's report as a TID 5200 Comprehensive SR (PS3.16 TID 5200/5201/5202/5203), or as
TID 5300 with `template="5300"` (sr5300.py). What it holds is the report model's (report.py):
values it withholds are never NUMs, only sentences.

highdicom has no echo template, so the tree is composed from its content items:

    CONTAINER (125200 DCM) Adult Echocardiography Procedure Report   [template 5200]
      HAS OBS CONTEXT  TID 1002/1004 device observer (the node)
      CONTAINS CONTAINER (121118 DCM) Patient Characteristics    -- TID 5201: height, weight,
                                                                    BSA, heart rate
      CONTAINS CONTAINER (121070 DCM) Findings                     -- one per section
        HAS CONCEPT MOD CODE Finding Site = Left/Right Ventricle, Left Atrium, Aortic /
                                            Mitral / Tricuspid Valve, Aorta (TID 5200 order)
        CONTAINS CONTAINER (125007 DCM) Measurement Group          -- one per image mode
          HAS CONCEPT MOD CODE Image Mode
          CONTAINS NUM <LOINC concept> <value> <UCUM unit>
            HAS CONCEPT MOD  Image View, Cardiac Cycle Point, Direction of Flow, Finding Site,
                             Measurement Method, Derivation (mean / median / maximum of beats),
                             Algorithm Family / Name / Version / Parameters (TID 4019)
            HAS PROPERTIES   Comment: each qualification of the value;
                             Calculation Description: the formula of a derived value
            INFERRED FROM SCOORD per beat (calipers, source pixels)
              SELECTED FROM IMAGE <source SOP instance, that beat's frame>
      CONTAINS TEXT (121106 DCM) Comment  -- after the findings: each value not reported and
                                            why, each clip not measured and why

Every container is SEPARATE, so any SR viewer (dcmtk dsr2html, Weasis) prints each value with
its own name. Image and coordinate references hang under the NUM because INFERRED FROM may not
leave a CONTAINER in a Comprehensive SR (PS3.3 Table A.35.3-2).
"""

from __future__ import annotations

import datetime
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
from echo_node.results.coding import CODING_5200, SECTION_ORDER, Coding5200
from echo_node.results.device import DeviceInfo, contributing_equipment
from echo_node.results.patient import copy_patient_and_study
from echo_node.results.report import (
    DerivedValue,
    Report,
    ReportedValue,
    SourceClip,
    build_report,
    pair_results,
)
from echo_node.results.series import Reference, Series, hierarchical, report_series
from echo_node.results.srcontent import (
    Tree,
    algorithm_items,
    calculation_items,
    container,
    derivation,
    evidence,
    image_mode,
    modifier,
    modifiers,
    node_observer,
    note,
    number,
    patient_characteristics,
    qualifications,
    source_references,
    text,
)

logger = logging.getLogger(__name__)

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
TEMPLATES = (codes.TEMPLATE_ID_ECHO, codes.TEMPLATE_ID_SIMPLIFIED_ECHO)
VIEW_CODES = {View.PLAX: codes.VIEW_PLAX, View.A4C: codes.VIEW_A4C}

__all__ = ["COMPREHENSIVE_SR", "TEMPLATES", "SourceClip", "build_sr"]


def build_sr(
    sources: Sequence[SourceClip],
    results: Sequence[ClipResult] | None = None,
    *,
    node: DeviceInfo,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    series: Series | None = None,
    instance_number: int = 1,
    predecessor: Dataset | None = None,
    template: str = "5200",
    overlays: Sequence[Reference] = (),
) -> Dataset:
    """Build one Comprehensive SR for a study run.

    Each source's ClipResult is `SourceClip.result`, or else the item of `results` with its SOP
    Instance UID. `series` is the run's report series (run 1 when not given); `overlays` the
    run's overlay SCs, listed as Pertinent Other Evidence. `predecessor` is an earlier SR of
    this study that this one supersedes. `template` is "5200" (sections of TID 5200) or "5300"
    (TID 5300 Simplified Echo).
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
    series = series or report_series(1, datetime.datetime.now())

    report = build_report(pairs)
    tree = sr5300.content(report, node) if template == "5300" else content_5200(report, node)
    with warnings.catch_warnings():
        # highdicom warns about odd person names and quotes them: patient data in a log.
        warnings.simplefilter("ignore", UserWarning)
        sr = hd.sr.ComprehensiveSR(
            evidence=[evidence(pair.header) for pair in pairs],
            content=tree.root,
            series_instance_uid=series_uid or generate_uid(),
            series_number=series.number,
            sop_instance_uid=instance_uid or generate_uid(),
            instance_number=instance_number,
            manufacturer=node.manufacturer,
            is_complete=True,
            is_verified=False,  # machine output: nobody has signed it
            previous_versions=[predecessor] if predecessor is not None else None,
            contributing_equipment=contributing_equipment(report.algorithms) or None,
            manufacturer_model_name=node.model_name,
            software_versions=node.software_version,
            series_description=series.description,
        )
    copy_patient_and_study(sr, pairs[0].header)
    series.apply(sr)
    sr.DeviceUID = node.device_uid  # General Equipment: the node, as its device observer UID
    # Preliminary Flag is Type 3; highdicom writes PRELIMINARY for non-final documents, which
    # some receivers read as "ignore". Completion/Verification flags say what is meant.
    if "PreliminaryFlag" in sr:
        del sr.PreliminaryFlag
    if overlays:
        sr.PertinentOtherEvidenceSequence = list(hierarchical(study_uid, list(overlays)))
    logger.info(
        "built SR (TID %s): %d values, %d derived, %d withheld, %d notes",
        template,
        len(report.values),
        len(report.derived),
        len(report.withheld),
        len(report.notes),
        extra={"sop_instance_uid": str(sr.SOPInstanceUID), "study_instance_uid": study_uid},
    )
    return sr


def content_5200(report: Report, node: DeviceInfo) -> Tree:
    """The TID 5200 tree: sections by Finding Site, measurement groups by image mode."""
    root = hd.sr.ContainerContentItem(
        name=codes.ADULT_ECHO_REPORT,
        template_id=codes.TEMPLATE_ID_ECHO,
        is_content_continuous=False,
    )
    values: list[ReportedValue | DerivedValue] = [*report.values, *report.derived]
    nums = [_num(v, node) for v in values]
    root.ContentSequence = DicomSequence(
        [
            *node_observer(node),
            *patient_characteristics(report),
            *_sections(nums),
            *(note(sentence) for sentence in report.notes),
        ]
    )
    return Tree(root, len(nums))


@dataclass(frozen=True)
class _Num:
    coding: Coding5200
    mode: Code
    item: Dataset


def _sections(nums: Sequence[_Num]) -> Iterable[Dataset]:
    for section in SECTION_ORDER:
        in_section = [n for n in nums if n.coding.section == section]
        if not in_section:
            continue
        modes = list(dict.fromkeys(n.mode for n in in_section))
        groups = [
            container(
                codes.MEASUREMENT_GROUP,
                [modifier(codes.IMAGE_MODE, mode), *(n.item for n in in_section if n.mode == mode)],
            )
            for mode in modes
        ]
        yield container(codes.FINDINGS, [modifier(codes.FINDING_SITE, section), *groups])


def _num(value: ReportedValue | DerivedValue, node: DeviceInfo) -> _Num:
    coding = CODING_5200[value.key]
    source = value.source
    num = number(coding.concept, value)
    children: list[Dataset] = modifiers(
        (codes.IMAGE_VIEW, VIEW_CODES.get(source.view)),
        (codes.CARDIAC_CYCLE_POINT, coding.cardiac_phase),
        (codes.FLOW_DIRECTION, coding.flow_direction),
        (codes.FINDING_SITE, coding.finding_site),
        (codes.MEASUREMENT_METHOD, coding.method),
    )
    if coding.equivalent_meaning is not None:
        children.append(
            text(
                codes.EQUIVALENT_MEANING,
                coding.equivalent_meaning,
                hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
            )
        )
    if isinstance(value, ReportedValue):
        children.extend(derivation(value))
        children.extend(algorithm_items(value.algorithm))
        children.extend(qualifications(value))
        children.extend(source_references(value))
    else:
        children.extend(calculation_items(value, node))
        children.extend(qualifications(value))
    num.ContentSequence = DicomSequence(children)
    return _Num(coding, image_mode(source.mode, coding.spectral_mode), num)
