"""DICOM JSON (PS3.18 §F) helpers shared by the routers."""

from __future__ import annotations

from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from echo_node.web.errors import WebError

DICOM_JSON = "application/dicom+json"
# Binary values above this size are left out of metadata responses (PS3.18 allows omitting
# bulk data); Pixel Data is fetched through /frames or the instance itself.
BULK_THRESHOLD = 1024
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def attribute_tag(key: str) -> BaseTag:
    """A query key as a tag: a keyword ("PatientName") or eight hex digits ("00100010")."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return Tag(int(key, 16))
    tag = tag_for_keyword(key)
    if tag is None:
        raise WebError(400, f"unknown attribute '{key}'")
    return Tag(tag)


def keyword(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"{int(tag):08X}"


def without_bulk_data(dataset: Dataset) -> Dataset:
    """Drop large binary values (recursively, icons in sequences included) before JSON."""
    for element in list(dataset):
        if element.VR == "SQ":
            for item in element.value:
                without_bulk_data(item)
        elif element.VR in _BINARY_VRS and (
            element.tag == 0x7FE00010
            or element.value is None
            or len(element.value) > BULK_THRESHOLD
        ):
            del dataset[element.tag]
    return dataset


def to_json(dataset: Dataset) -> dict[str, Any]:
    return dataset.to_json_dict(
        bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=_no_bulk
    )


def _no_bulk(_element: Any) -> str:
    # Never reached: without_bulk_data removed everything above the threshold.
    raise WebError(500, "bulk data left in a metadata response")
