"""The study's report as TID 5300 "Simplified Echo Procedure Report" (Sup 169), the option
`sr_template = "5300"`; build_sr in sr.py writes the document around this tree.

    CONTAINER (125200 DCM) Adult Echocardiography Procedure Report   [template 5300]
      HAS OBS CONTEXT  TID 1002/1004 device observer: the node
      CONTAINS CONTAINER (121118 DCM) Patient Characteristics            -- TID 5201
      CONTAINS CONTAINER (125301 DCM) Pre-coordinated Measurements      -- one per algorithm
        HAS OBS CONTEXT  TID 1002/1004 device observer: the algorithm (its UID, name, version
                         with the checkpoint's sha256)
        HAS CONCEPT MOD  Algorithm Family / Name / Version / Parameters (TID 4019)
        CONTAINS NUM <CID 12300 LOINC code> <value> <UCUM unit>            -- TID 5301
          HAS CONCEPT MOD  Derivation (mean / median / maximum of beats)
          HAS PROPERTIES   Short Label
          INFERRED FROM    SCOORD per beat > SELECTED FROM IMAGE <source, frame>
      CONTAINS CONTAINER (125302 DCM) Post-coordinated Measurements
        CONTAINS NUM <concept> <value> <unit>                              -- TID 5302
          HAS CONCEPT MOD  Measurement Type, Finding Site, Finding Observation Type, Measured
                           Property, Cardiac Cycle Point, Flow Direction, Measurement Method,
                           Image Mode, Image View, Derivation, TID 4019, Equivalent Meaning
          HAS PROPERTIES   Short Label; Comment (each qualification); Calculation Description
          INFERRED FROM    SCOORD per beat / IMAGE
      CONTAINS TEXT (121106 DCM) Comment  -- each value not reported, each clip not measured

Decisions, with the evidence (PS3.16 TID 5300-5302, PS3.17 Annex CCCC, pydicom's CID tables):

- SOP class: Comprehensive SR (...88.33), like the TID 5200 report. PS3.3 A.35.17 defines a
  Simplified Adult Echo SR IOD (...88.72) built from TID 5300, but the dciodvfy on the node's
  machines has no definition of it ("Information Object Not found"), and a Comprehensive SR
  places no constraint on its template. The tree keeps to that IOD's rules anyway (by-value
  relationships; TEXT, CODE, NUM, UIDREF, CONTAINER, IMAGE, SCOORD only).
- Attribution per value: TID 5301 is non-extensible (Selection Status, Derivation, Short Label
  and the TID 320 references are its only children), so a pre-coordinated value cannot carry
  TID 4019 itself. Observation context is inherited by a container's content (PS3.3 C.17.5), so
  the pre-coordinated values are grouped in one Pre-coordinated Measurements container per
  algorithm, whose device observer and TID 4019 items name the exact weights behind every value
  in it (the one liberty taken with TID 5300, which lists the container once). TID 5302 is
  extensible: each post-coordinated value carries its own TID 4019.
- What goes post-coordinated (TID 5302): a value with a qualification (TID 5301 has no place for
  the Comment that states it), a calculated value (its formula, Calculation Description), and a
  value with no CID 12300 concept: the AI ejection fraction (EchoNet-Dynamic regresses it from
  one A4C clip: not Method of Disks, so not 79993-2; the generic LOINC 18043-0 with Measurement
  Type "Estimated" of CID 3627) and relative wall thickness (a Ratio of Thickness). A
  post-coordinated value keeps its CID 12300 concept where it has one, so a receiver matching
  codes still finds it.
- LVPWd: CID 12300 holds 80031-8 and 80032-6 with one Code Meaning; the PS3.17 CCCC.5 example
  writes 80031-8 with the Short Label "LVPWd (2D)", so 80031-8 is 2D and 80032-6 M-mode.
- One value per concept, no Selection Status: with a single value the row is optional, and
  none of CID 12301's reasons (user chosen, most recent, mean, max, min) describes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from echo_node.results import codes
from echo_node.results.coding import CODING_5200, CODING_5300, Coding5300
from echo_node.results.device import DeviceInfo, algorithm_uid
from echo_node.results.report import (
    Algorithm,
    DerivedValue,
    ImageMode,
    Report,
    ReportedValue,
)
from echo_node.results.srcontent import (
    Tree,
    algorithm_items,
    calculation_items,
    container,
    derivation,
    device_observer,
    image_mode,
    modifiers,
    node_observer,
    note,
    number,
    patient_characteristics,
    qualifications,
    source_references,
    text,
)

R = hd.sr.RelationshipTypeValues
_VIEWS = {"plax": codes.VIEW_PLAX, "a4c": codes.VIEW_A4C}


def content(report: Report, node: DeviceInfo) -> Tree:
    root = hd.sr.ContainerContentItem(
        name=codes.ADULT_ECHO_REPORT,
        template_id=codes.TEMPLATE_ID_SIMPLIFIED_ECHO,
        is_content_continuous=False,
    )
    pre = [v for v in report.values if _pre_coordinated(v)]
    post: list[ReportedValue | DerivedValue] = [
        *(v for v in report.values if not _pre_coordinated(v)),
        *report.derived,
    ]
    items: list[Dataset] = [*node_observer(node), *patient_characteristics(report)]
    for made_by in dict.fromkeys(v.algorithm for v in pre):
        items.append(_by_algorithm(made_by, [v for v in pre if v.algorithm == made_by]))
    if post:
        nums = [_post_num(v, node) for v in post]
        items.append(container(codes.POST_COORDINATED_MEASUREMENTS, nums))
    items.extend(note(sentence) for sentence in report.notes)
    root.ContentSequence = DicomSequence(items)
    return Tree(root, len(pre) + len(post))


def _pre_coordinated(value: ReportedValue) -> bool:
    return CODING_5300[value.key].pre_coordinated and not value.qualifiers


def _concept(coding: Coding5300, mode: ImageMode) -> tuple[Code, str]:
    """The concept and short label for the clip's mode (2D / MM codes of CID 12300)."""
    if coding.mmode is None:
        return coding.concept, coding.label
    if mode is ImageMode.M:
        return coding.mmode, f"{coding.label} (MM)"
    return coding.concept, f"{coding.label} (2D)"


def _short_label(label: str) -> Dataset:
    return text(codes.SHORT_LABEL, label, R.HAS_PROPERTIES)


def _by_algorithm(made_by: Algorithm, values: Sequence[ReportedValue]) -> Dataset:
    """A Pre-coordinated Measurements container of one algorithm's values (TID 5301 each)."""
    observer = device_observer(
        algorithm_uid(made_by), made_by.name, None, f"{made_by.name} {made_by.version_text}"
    )
    nums = []
    for value in values:
        concept, label = _concept(CODING_5300[value.key], value.source.mode)
        num = number(concept, value)
        num.ContentSequence = DicomSequence(
            [*derivation(value), _short_label(label), *source_references(value)]
        )
        nums.append(num)
    return container(
        codes.PRE_COORDINATED_MEASUREMENTS, [*observer, *algorithm_items(made_by), *nums]
    )


def _post_num(value: ReportedValue | DerivedValue, node: DeviceInfo) -> Dataset:
    """TID 5302: the meaning in modifiers, in the order of the template's rows."""
    coding = CODING_5300[value.key]
    where = coding.coordinates
    source = value.source
    concept, label = _concept(coding, source.mode)
    spectral = CODING_5200[value.key].spectral_mode
    children: list[Dataset] = modifiers(
        (codes.MEASUREMENT_TYPE, where.measurement_type),
        (codes.FINDING_SITE, where.finding_site),
        (codes.FINDING_OBSERVATION_TYPE, where.observation_type),
        (codes.MEASURED_PROPERTY, where.measured_property),
        (codes.CARDIAC_CYCLE_POINT, where.phase),
        (codes.FLOW_DIRECTION, where.flow_direction),
        (codes.MEASUREMENT_METHOD, where.method),
        (codes.IMAGE_MODE, image_mode(source.mode, spectral)),
        (codes.IMAGE_VIEW, where.view or _VIEWS.get(source.view.value)),
    )
    if coding.equivalent_meaning is not None:
        children.append(
            text(codes.EQUIVALENT_MEANING, coding.equivalent_meaning, R.HAS_CONCEPT_MOD)
        )
    if isinstance(value, ReportedValue):
        children.extend(derivation(value))
        children.extend(algorithm_items(value.algorithm))
        children.append(_short_label(label))
        children.extend(qualifications(value))
        children.extend(source_references(value))
    else:
        children.extend(calculation_items(value, node))
        children.append(_short_label(label))
        children.extend(qualifications(value))
    num = number(concept, value)
    num.ContentSequence = DicomSequence(children)
    return num
