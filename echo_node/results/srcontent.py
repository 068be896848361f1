"""Content items both SR templates (TID 5200 and TID 5300) write the same way: modifiers and
notes, a value's number, its derivation over beats, its algorithm (TID 4019), its
qualifications, its calipers (TID 320), the patient characteristics (TID 5201) and the device
observer. What is reported is decided in report.py; how it is coded per template in coding.py.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from ai.findings import Aggregation
from echo_node.results import codes
from echo_node.results.coding import CHARACTERISTICS, UNITS
from echo_node.results.device import DeviceInfo
from echo_node.results.report import (
    Algorithm,
    AlgorithmKind,
    BeatMark,
    Characteristic,
    DerivedValue,
    ImageMode,
    Report,
    ReportedValue,
    SourceImage,
)

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

R = hd.sr.RelationshipTypeValues
Value = ReportedValue | DerivedValue

DERIVATION: dict[Aggregation, Code] = {
    Aggregation.MEAN: codes.MEAN,
    Aggregation.MEDIAN: codes.MEDIAN,
    Aggregation.MAX: codes.MAXIMUM,
}
_FAMILY = {
    AlgorithmKind.AI: codes.ARTIFICIAL_INTELLIGENCE,
    AlgorithmKind.CLASSICAL: codes.EDGE_DETECTION,
}
_MODES = {
    ImageMode.TWO_D: codes.MODE_2D,
    ImageMode.M: codes.MODE_M,
    ImageMode.PW: codes.MODE_DOPPLER_PULSED,
    ImageMode.CW: codes.MODE_DOPPLER_CW,
}


@dataclass(frozen=True)
class Tree:
    """A template's content tree and what the log line about it says."""

    root: Dataset  # the root CONTAINER with its template identifier
    written: int  # NUMs written


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


def modifier(name: Code, value: Code) -> hd.sr.CodeContentItem:
    return hd.sr.CodeContentItem(name=name, value=value, relationship_type=R.HAS_CONCEPT_MOD)


def modifiers(*pairs: tuple[Code, Code | None]) -> list[Dataset]:
    """HAS CONCEPT MOD items for the (name, value) pairs that have a value, in order."""
    return [modifier(name, value) for name, value in pairs if value is not None]


def text(name: Code, value: str, relationship: hd.sr.RelationshipTypeValues) -> Dataset:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=relationship)


def note(sentence: str) -> Dataset:
    """A sentence of the document (what was not reported, and why)."""
    return text(codes.COMMENT, sentence, R.CONTAINS)


def container(name: Code, items: Sequence[Dataset]) -> hd.sr.ContainerContentItem:
    """A CONTAINER with SEPARATE items: any SR viewer prints each with its own name."""
    item = hd.sr.ContainerContentItem(
        name=name, relationship_type=R.CONTAINS, is_content_continuous=False
    )
    item.ContentSequence = DicomSequence(items)
    return item


def number(name: Code, value: Value | Characteristic) -> hd.sr.NumContentItem:
    """The NUM of a value, its Numeric Value written with the digits the report rounded it to
    ("89", "1.05"), so every reader sees the number the display string shows."""
    num = hd.sr.NumContentItem(
        name=name,
        value=value.value,
        unit=UNITS[value.presentation.unit],
        relationship_type=R.CONTAINS,
    )
    measured = num.MeasuredValueSequence[0]
    digits = max(0, -int(Decimal(value.presentation.resolution).as_tuple().exponent))
    measured.NumericValue = f"{value.value:.{digits}f}"
    if "FloatingPointValue" in measured:  # the DS string holds the rounded value exactly
        del measured.FloatingPointValue
    return num


def image_mode(mode: ImageMode, spectral_default: Code | None) -> Code:
    """The CID 12224 code of a clip's mode; a spectral clip that does not say PW or CW takes
    the mode the measurement is made with in practice."""
    return _MODES.get(mode) or spectral_default or codes.MODE_DOPPLER_PULSED


def derivation(value: ReportedValue) -> list[Dataset]:
    """Derivation (TID 300 row 3) of a value combined over several beats."""
    code = DERIVATION.get(value.aggregation)
    return [modifier(codes.DERIVATION, code)] if code is not None else []


def algorithm_items(made_by: Algorithm) -> list[Dataset]:
    """TID 4019: the exact weights behind the value (name, version with sha256, whether the
    file is the published checkpoint, and the family: AI or classical image processing)."""
    weights = made_by.weights_text
    return list(
        hd.sr.AlgorithmIdentification(
            name=made_by.name,
            version=made_by.version_text,
            parameters=[weights] if weights else None,
            family=_FAMILY.get(made_by.kind),
        )
    )


def calculation_items(value: DerivedValue, node: DeviceInfo) -> list[Dataset]:
    """How a derived value was calculated: by the node's software, with its formula."""
    return [
        *hd.sr.AlgorithmIdentification(name="Echo Node calculation", version=node.software_version),
        text(codes.CALCULATION_DESCRIPTION, value.formula, R.HAS_PROPERTIES),
    ]


def qualifications(value: Value) -> list[Dataset]:
    """Each qualification of the value, as a Comment on the NUM itself."""
    return [text(codes.COMMENT, sentence, R.HAS_PROPERTIES) for sentence in value.qualifiers]


def source_references(value: ReportedValue) -> list[Dataset]:
    """INFERRED FROM each beat's caliper on the frame it was placed on (TID 320, $Purpose =
    Source of Measurement): one SCOORD per beat, never one graphic across beats; the frames
    alone (IMAGE) for a value without calipers (EF from the clip)."""
    marked = [beat for beat in value.beats if beat.points]
    if not marked:
        frames = [beat.frame + 1 for beat in value.beats] if value.source.multi_frame else None
        return [_image(value.source, frames, R.INFERRED_FROM)]
    return [_scoord(beat, value.source) for beat in marked]


def _image(
    source: SourceImage, frames: list[int] | None, relationship: hd.sr.RelationshipTypeValues
) -> Dataset:
    return hd.sr.ImageContentItem(
        name=codes.SOURCE_OF_MEASUREMENT,
        referenced_sop_class_uid=source.sop_class_uid,
        referenced_sop_instance_uid=source.sop_instance_uid,
        referenced_frame_numbers=frames or None,
        relationship_type=relationship,
    )


def _scoord(beat: BeatMark, source: SourceImage) -> Dataset:
    # One point is a peak; two a caliper line; more on one frame are separate marks.
    points = np.asarray(beat.points, dtype=np.float64)
    kind = {1: hd.sr.GraphicTypeValues.POINT, 2: hd.sr.GraphicTypeValues.POLYLINE}.get(
        len(points), hd.sr.GraphicTypeValues.MULTIPOINT
    )
    scoord = hd.sr.ScoordContentItem(
        name=codes.SOURCE_OF_MEASUREMENT,
        graphic_type=kind,
        graphic_data=points,
        relationship_type=R.INFERRED_FROM,
    )
    frame = [beat.frame + 1] if source.multi_frame else None
    scoord.ContentSequence = DicomSequence([_image(source, frame, R.SELECTED_FROM)])
    return scoord


def patient_characteristics(report: Report) -> list[Dataset]:
    """TID 5201 Echocardiography Patient Characteristics, when the headers give any."""
    if not report.characteristics:
        return []
    return [
        container(
            codes.PATIENT_CHARACTERISTICS, [_characteristic(c) for c in report.characteristics]
        )
    ]


def _characteristic(item: Characteristic) -> Dataset:
    num = number(CHARACTERISTICS[item.key], item)
    children: list[Dataset] = []
    if item.key == "bsa" and item.formula:
        children.append(modifier(codes.MEASUREMENT_METHOD, codes.BSA_DUBOIS))
        children.append(text(codes.CALCULATION_DESCRIPTION, item.formula, R.HAS_PROPERTIES))
    elif item.formula:  # a heart rate that differs between clips: their mean
        children.append(modifier(codes.DERIVATION, codes.MEAN))
    if children:
        num.ContentSequence = DicomSequence(children)
    return num


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
