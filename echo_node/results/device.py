"""Who writes the result objects: the node as DICOM equipment and SR device observer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import highdicom as hd
from pydicom.uid import generate_uid

import echo_node
from ai.findings import Provenance
from echo_node.results import codes
from echo_node.results.report import Algorithm, AlgorithmKind, algorithm


def _software_version() -> str:
    return echo_node.__version__


@dataclass(frozen=True)
class DeviceInfo:
    """The node's identity in every SR and SC it writes.

    Manufacturer, model name and software version stay stable across runs so that a reporting
    system can map "Echo Node" once as its own source (DESIGN.md §5).
    """

    ae_title: str  # the node's name: its AE title
    device_uid: str  # Device Observer UID (TID 1004); stable per installation
    manufacturer: str = "Echo Node"
    model_name: str = "Echo Node"
    software_version: str = field(default_factory=_software_version)


def algorithm_uid(made_by: Algorithm) -> str:
    """A UID per exact algorithm (name, version, weights): the same model release on any node
    gets the same one, so a site can tell model versions apart across its reports."""
    sources = [made_by.name, made_by.version, made_by.sha256 or made_by.kind.value]
    return str(generate_uid(entropy_srcs=sources))


def contributing_equipment(
    items: Iterable[Algorithm | Provenance],
) -> list[hd.ContributingEquipment]:
    """The algorithms behind the values (PS3.3 C.12.1.1.7 Contributing Equipment), one item
    per exact algorithm, so a site can tell which weights produced a value even when the node's
    own software version is unchanged: Software Versions holds the registry version, Device
    Serial Number the checkpoint's sha256 (it identifies this copy of the weights; 64
    characters, a whole LO), Contribution Description the sha256 again and whether it is the
    published checkpoint.

    PS3.3's Contributing Equipment Sequence has no Device UID attribute (dciodvfy reports one
    as not in the IOD); the algorithm's UID is its device observer UID in a TID 5300 report.
    """
    seen = list(dict.fromkeys(i if isinstance(i, Algorithm) else algorithm(i) for i in items))
    equipment = []
    for made_by in seen:
        item = hd.ContributingEquipment(
            manufacturer="Echo Node",
            purpose_of_reference=codes.PROCESSING_EQUIPMENT,
            manufacturer_model_name=made_by.name,
            software_versions=made_by.version,
            device_serial_number=made_by.sha256,
            contribution_description=_contribution(made_by),
        )
        equipment.append(item)
    return equipment


def _contribution(made_by: Algorithm) -> str:
    if made_by.kind is AlgorithmKind.CLASSICAL:
        return "classical image processing (no trained weights)"
    return f"AI model, checkpoint sha256 {made_by.sha256}: {made_by.weights_text}"
