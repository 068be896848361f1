"""The study's measurements as TID 5300 "Simplified Echo Procedure Report" (Sup 169), the option
`sr_template = "5300"`; build_sr in sr.py writes the document around this tree.

    CONTAINER (125200 DCM) Adult Echocardiography Procedure Report   [template 5300]
      HAS OBS CONTEXT  TID 1002/1004 device observer: the node
      HAS OBS CONTEXT  TID 1002/1004 device observer: each algorithm behind a value
      CONTAINS TEXT (121106 DCM) Comment        -- what did not run or has no 5300 code
      CONTAINS CONTAINER (125301 DCM) Pre-coordinated Measurements
        CONTAINS NUM <CID 12300 LOINC code> <value> <UCUM unit>            -- TID 5301
          HAS PROPERTIES TEXT (125309 DCM) Short Label
          INFERRED FROM SCOORD (caliper points) > SELECTED FROM IMAGE <source, frame>
      CONTAINS CONTAINER (125302 DCM) Post-coordinated Measurements
        CONTAINS NUM <concept> <value> <unit>                              -- TID 5302
          HAS CONCEPT MOD  Measurement Type, Finding Site, Finding Observation Type,
                           Measured Property, Measurement Method, Image Mode, Image View,
                           Algorithm Name / Version (TID 4019)
          HAS PROPERTIES TEXT Short Label
          INFERRED FROM SCOORD / IMAGE

Decisions, with the evidence (PS3.16 TID 5300-5302, PS3.17 Annex CCCC, pydicom's CID tables):

- SOP class: Comprehensive SR (...88.33), like the TID 5200 report. PS3.3 A.35.17 defines a
  Simplified Adult Echo SR IOD (...88.72) built from TID 5300, but the dciodvfy on the node's
  machines has no definition of it ("Information Object Not found"), and a Comprehensive SR
  places no constraint on its template. The tree keeps to that IOD's rules anyway (by-value
  relationships; TEXT, CODE, NUM, UIDREF, CONTAINER, IMAGE, SCOORD only), so moving to ...88.72
  changes the SOP class and adds the Enhanced General Equipment and Timezone modules, no more.
- LVPWd: CID 12300 holds 80031-8 and 80032-6 with one Code Meaning; the PS3.17 CCCC.5 example
  writes 80031-8 with the Short Label "LVPWd (2D)", so 80031-8 is 2D and 80032-6 M-mode (the
  pattern of the IVSd/LVIDd/LVIDs pairs, 2D and MM codes side by side).
- LVEF: the value is EchoNet-Dynamic's regression from one apical 4-chamber clip, not a Method
  of Disks tracing, so 79993-2 "single plane 4C (MOD)" would mislabel it and CID 12300 has no
  other fit. It goes to Post-coordinated Measurements as (18043-0, LN) "Left Ventricular
  Ejection Fraction by US" (a non-CID 12300 LOINC is how CCCC.5 writes 29469-4 there too)
  with Finding Site Left Ventricle, Measured Property Cardiac ejection fraction (70822001),
  Image Mode 2D, Image View Apical four chamber (significant: single plane), Measurement Type
  Directly measured (the value comes from the clip, not from other reported values) and a
  Measurement Method of the node's own scheme, since CID 12227 (extensible) has none for it and
  omitting the method would let receivers merge it with a MOD value.
- Provenance: TID 5301 is non-extensible (Selection Status, Derivation, Short Label and the
  TID 320 references are its only children), so a pre-coordinated value cannot carry TID 4019.
  Each algorithm is instead a device observer of the document (TID 1001 takes TID 1002 1-n;
  TID 1004 Name = model name, Model Name = name and version), and Contributing Equipment
  (PS3.3 C.12.1.1.7) names every model with version and checksum as in the TID 5200 report.
  TID 5302 is extensible, so the post-coordinated values also carry TID 4019 Algorithm Name
  and Version, the one place where a value is tied to its model.
- One value per concept, no Selection Status: with a single value the row is optional, and
  none of CID 12301's reasons (user chosen, most recent, mean, max, min) describes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ai.findings import Provenance
from echo_node.results import codes
from echo_node.results.device import DeviceInfo
from echo_node.results.srcontent import (
    Candidate,
    Pair,
    Tree,
    chosen_measurements,
    device_observer,
    image_mode,
    modifier,
    node_observer,
    note,
    source_references,
    sr_value,
)


@dataclass(frozen=True)
class _Measurement:
    candidate: Candidate
    coding: codes.PreCoordinated | codes.PostCoordinated
    concept: Code  # the concept written, after choosing the image mode's code
    label: str
    mode: Code


def content(pairs: Sequence[Pair], node: DeviceInfo) -> Tree:
    measurements, notes = chosen_measurements(
        pairs,
        codes.FINDING_CODING_5300,
        codes.TEMPLATE_ID_SIMPLIFIED_ECHO,
        build=_coded,
        key=_identity,
        of=lambda m: m.candidate,
        unit_of=lambda m: m.coding.unit,
    )
    provenances: list[Provenance] = []
    for m in measurements:
        if m.candidate.finding.provenance not in provenances:
            provenances.append(m.candidate.finding.provenance)

    pre = [_pre_num(m) for m in measurements if isinstance(m.coding, codes.PreCoordinated)]
    post = [_post_num(m) for m in measurements if isinstance(m.coding, codes.PostCoordinated)]
    root = hd.sr.ContainerContentItem(
        name=codes.ADULT_ECHO_REPORT, template_id=codes.TEMPLATE_ID_SIMPLIFIED_ECHO
    )
    items: list[Dataset] = [*node_observer(node)]
    for provenance in provenances:
        items.extend(_algorithm_observer(provenance))
    items.extend(note(text) for text in notes)
    if pre:
        items.append(_container(codes.PRE_COORDINATED_MEASUREMENTS, pre))
    if post:
        items.append(_container(codes.POST_COORDINATED_MEASUREMENTS, post))
    root.ContentSequence = DicomSequence(items)
    return Tree(root, tuple(provenances), len(measurements), tuple(notes), local_codes=bool(post))


def declare_local_codes(sr: Dataset) -> None:
    """Coding Scheme Identification (PS3.3 C.12.1.1.4) for the node's 99ECHONODE scheme."""
    item = Dataset()
    item.CodingSchemeDesignator = codes.LOCAL_SCHEME
    item.CodingSchemeName = "Echo Node local codes"
    item.CodingSchemeResponsibleOrganization = "Echo Node"
    existing = list(sr.get("CodingSchemeIdentificationSequence", []))
    sr.CodingSchemeIdentificationSequence = DicomSequence([*existing, item])


def _coded(
    candidate: Candidate, coding: codes.PreCoordinated | codes.PostCoordinated
) -> _Measurement:
    mode = image_mode(candidate.result, None)
    if isinstance(coding, codes.PostCoordinated) or coding.mmode is None:
        return _Measurement(candidate, coding, coding.concept, coding.label, mode)
    if mode == codes.MODE_M:
        return _Measurement(candidate, coding, coding.mmode, f"{coding.label} (MM)", mode)
    return _Measurement(candidate, coding, coding.concept, f"{coding.label} (2D)", mode)


def _identity(m: _Measurement) -> tuple[str, str, str | None]:
    """What makes two values the same measurement: the code, and for a post-coordinated one
    the modifiers that tell it apart from others with that code."""
    if isinstance(m.coding, codes.PostCoordinated):
        return (m.concept.scheme_designator, m.concept.value, m.coding.method.value)
    return (m.concept.scheme_designator, m.concept.value, None)


def _algorithm_observer(provenance: Provenance) -> hd.sr.ObserverContext:
    # Stable per model version and checkpoint, so a site sees one device per model release.
    uid = generate_uid(
        entropy_srcs=[provenance.name, provenance.version, provenance.sha256 or "classical"]
    )
    return device_observer(
        str(uid), provenance.name, None, f"{provenance.name} {provenance.version}"
    )


def _container(name: Code, nums: Sequence[Dataset]) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(
        name=name, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = DicomSequence(nums)
    return container


def _num(m: _Measurement) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(
        name=m.concept,
        value=sr_value(m.candidate.finding, m.coding.unit),
        unit=m.coding.unit,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )


def _short_label(label: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=codes.SHORT_LABEL,
        value=label,
        relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
    )


def _pre_num(m: _Measurement) -> hd.sr.NumContentItem:
    """TID 5301: the code says it all; only the label and where it was measured follow."""
    num = _num(m)
    num.ContentSequence = DicomSequence(
        [_short_label(m.label), *source_references(m.candidate.finding, m.candidate.source)]
    )
    return num


def _post_num(m: _Measurement) -> hd.sr.NumContentItem:
    """TID 5302: the meaning in modifiers, in the order of the template's rows."""
    coding = m.coding
    assert isinstance(coding, codes.PostCoordinated)
    finding = m.candidate.finding
    children: list[Dataset] = [
        modifier(codes.MEASUREMENT_TYPE, coding.measurement_type),
        modifier(codes.FINDING_SITE, coding.finding_site),
        modifier(codes.FINDING_OBSERVATION_TYPE, coding.observation_type),
        modifier(codes.MEASURED_PROPERTY, coding.measured_property),
        modifier(codes.MEASUREMENT_METHOD, coding.method),
        modifier(codes.IMAGE_MODE, m.mode),
    ]
    if coding.view is not None:
        children.append(modifier(codes.IMAGE_VIEW, coding.view))
    children.extend(
        hd.sr.AlgorithmIdentification(
            name=finding.provenance.name, version=finding.provenance.version
        )
    )
    children.append(_short_label(m.label))
    children.extend(source_references(finding, m.candidate.source))
    num = _num(m)
    num.ContentSequence = DicomSequence(children)
    return num
