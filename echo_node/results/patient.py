"""Patient and study attributes copied exactly from the source, so results join its study."""

from __future__ import annotations

import copy

import highdicom as hd
from pydicom.datadict import dictionary_is_retired
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

_PATIENT_GROUP = 0x0010
_OTHER_PATIENT_IDS = 0x00101000  # retired; Other Patient IDs Sequence replaces it


def copy_patient_and_study(target: hd.SOPClass, source: Dataset) -> None:
    """Patient, General Study and Patient Study modules of `source` into `target`.

    highdicom copies the attributes its module tables list; the source may also carry other
    patient attributes (e.g. Other Patient IDs Sequence), which are copied too, so that nothing
    about the patient differs between the images and the results. A retired one is not copied
    (dciodvfy flags it in a new object), except that retired Other Patient IDs become items of
    Other Patient IDs Sequence, so no identifier of the patient is lost.
    """
    target.copy_patient_and_study_information(source)
    for element in source.group_dataset(_PATIENT_GROUP):
        if element.tag.is_private or element.tag in target or dictionary_is_retired(element.tag):
            continue
        target.add(copy.deepcopy(element))
    _other_ids(target, source)
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = copy.deepcopy(source.SpecificCharacterSet)


def _other_ids(target: Dataset, source: Dataset) -> None:
    if _OTHER_PATIENT_IDS in target:
        del target[_OTHER_PATIENT_IDS]
    element = source.get(_OTHER_PATIENT_IDS)
    values = [] if element is None or not element.value else element.value
    identifiers = [str(v) for v in ([values] if isinstance(values, str) else values) if v]
    if not identifiers or "OtherPatientIDsSequence" in target:
        return
    items = []
    for identifier in identifiers:
        item = Dataset()
        item.PatientID = identifier
        item.TypeOfPatientID = "TEXT"
        items.append(item)
    target.OtherPatientIDsSequence = DicomSequence(items)
