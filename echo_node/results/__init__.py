"""Result objects written back to the PACS: the SR (TID 5200, or 5300) and the overlay SCs.

The worker calls `build_sr` once per study run and, per clip the report has values from,
`plan_for`, `render_for` and `build_overlay_sc`; the builders return pydicom datasets ready to
store and send.
"""

from echo_node.results.device import DeviceInfo
from echo_node.results.sc import build_overlay_sc, plan_for, render_for
from echo_node.results.sr import SourceClip, build_sr

__all__ = ["DeviceInfo", "SourceClip", "build_overlay_sc", "build_sr", "plan_for", "render_for"]
