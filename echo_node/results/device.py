"""Who writes the result objects: the node as DICOM equipment and SR device observer."""

from __future__ import annotations

from dataclasses import dataclass, field

import echo_node


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
