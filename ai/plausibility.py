"""Values no adult heart produces are flagged, never passed on as if measured.

The limits are physiological bounds, far wider than normal ranges: severe hypertrophy, a
dilated ventricle or a stenotic jet stay inside them, while a model that collapsed its two
points onto one (0 cm) or a trace that followed noise does not. A flagged value stays in the
result, on record; the report withholds it (echo_node/results/quality.py): it is never a
measurement in the SR, which says in a sentence that it was not reported and why, and an
unflagged value of the same measurement is reported instead when there is one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType

from ai.findings import Finding, PipelineResult

FLAG = "outside_physiological_range"

# Finding name -> (lowest, highest) of |value| in the finding's unit (cm, %, cm/s, ratio).
LIMITS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "IVSd": (0.2, 4.0),
        "LVPWd": (0.2, 4.0),
        "LVIDd": (1.5, 10.0),
        "LVIDs": (0.5, 9.0),
        "AoRoot": (1.0, 7.0),
        "AoAsc": (1.0, 8.0),
        "LAd": (1.0, 9.0),
        "RVbase": (1.0, 8.0),
        "LVEF": (5.0, 90.0),
        "TR_Vmax": (50.0, 700.0),
        "AV_Vmax": (30.0, 700.0),
        "MR_Vmax": (100.0, 800.0),
        "LVOT_Vmax": (20.0, 350.0),
        "MV_E": (10.0, 300.0),
        "MV_A": (10.0, 250.0),
        "MV_E_A": (0.2, 6.0),
        "e_lat": (1.0, 30.0),
        "e_med": (1.0, 30.0),
    }
)


def implausible(finding: Finding) -> bool:
    limits = LIMITS.get(finding.name)
    if limits is None or not math.isfinite(finding.value):
        return False
    low, high = limits
    return not low <= abs(finding.value) <= high


def flag_implausible(result: PipelineResult) -> PipelineResult:
    """The result with FLAG on every finding outside its physiological limits."""
    if not any(implausible(f) for f in result.findings):
        return result
    findings = tuple(
        dataclasses.replace(f, flags=(*f.flags, FLAG)) if implausible(f) else f
        for f in result.findings
    )
    return dataclasses.replace(result, findings=findings)
