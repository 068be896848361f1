"""Patient and study attributes copied exactly from the source, so results join its study."""

from __future__ import annotations

import copy

import highdicom as hd
from pydicom.dataset import Dataset

_PATIENT_GROUP = 0x0010


def copy_patient_and_study(target: hd.SOPClass, source: Dataset) -> None:
    """Patient, General Study and Patient Study modules of `source` into `target`.

    highdicom copies the attributes its module tables list; the source may also carry retired
    or newer patient attributes (e.g. Other Patient IDs), which are copied too, so that nothing
    about the patient differs between the images and the results.
    """
    target.copy_patient_and_study_information(source)
    for element in source.group_dataset(_PATIENT_GROUP):
        if not element.tag.is_private and element.tag not in target:
            target.add(copy.deepcopy(element))
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = copy.deepcopy(source.SpecificCharacterSet)
