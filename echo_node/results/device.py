"""Who writes the result objects: the node as DICOM equipment and SR device observer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import highdicom as hd

import echo_node
from ai.findings import Provenance
from echo_node.results import codes


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


def contributing_equipment(provenances: Iterable[Provenance]) -> list[hd.ContributingEquipment]:
    """The algorithms and models behind the values (PS3.3 C.12.1.1.7 Contributing Equipment).

    One item per distinct model or classical engine, so a site can tell which version produced
    a value even when the node's own software version is unchanged.
    """
    seen: list[Provenance] = []
    for provenance in provenances:
        if provenance not in seen:
            seen.append(provenance)
    return [
        hd.ContributingEquipment(
            manufacturer="Echo Node",
            purpose_of_reference=codes.PROCESSING_EQUIPMENT,
            manufacturer_model_name=p.name,
            software_versions=p.version,
            contribution_description=(
                f"model sha256 {p.sha256} on {p.device}" if p.sha256 else "classical measurement"
            ),
        )
        for p in seen
    ]
