"""Burning calipers, contours, values and a legend into RGB frames (OpenCV).

Only ASCII text: OpenCV's Hershey fonts have no other glyphs, and finding names are ASCII.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from ai.findings import ClipResult, Finding, PipelineStatus

DISCLAIMER = "Not for diagnosis without review"

# One colour per finding, cycled; saturated so they stand out on grey echo frames.
_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 0),
    (0, 255, 255),
    (255, 0, 255),
    (0, 255, 0),
    (255, 128, 0),
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def legend_lines(result: ClipResult, software_version: str) -> list[str]:
    """What produced the overlay, each value, and the disclaimer."""
    lines = [f"Echo Node {software_version}"]
    for pipeline in result.pipelines:
        if pipeline.status is not PipelineStatus.OK:
            lines.append(f"{pipeline.pipeline}: {pipeline.status.value}")
            continue
        makers = sorted({f"{f.provenance.name} {f.provenance.version}" for f in pipeline.findings})
        lines.append(f"{pipeline.pipeline}: {', '.join(makers) or 'no findings'}")
        lines.extend(_label(f) for f in pipeline.findings)
    lines.append(DISCLAIMER)
    return [line.encode("ascii", "replace").decode("ascii") for line in lines]


def burn_in(
    frames: npt.NDArray[np.uint8], result: ClipResult, software_version: str
) -> npt.NDArray[np.uint8]:
    """A copy of `frames` (N, H, W, 3) with the findings and legend drawn in."""
    out = np.ascontiguousarray(frames.copy())
    scale = max(0.3, min(out.shape[1], out.shape[2]) / 700)
    thickness = 1 if scale < 0.6 else 2
    findings = [
        f for p in result.pipelines if p.status is PipelineStatus.OK for f in p.findings if f.points
    ]
    for index, finding in enumerate(findings):
        colour = _COLOURS[index % len(_COLOURS)]
        for frame_index in _frames_of(finding, len(out)):
            _draw_finding(out[frame_index], finding, colour, scale, thickness)
    lines = legend_lines(result, software_version)
    for frame in out:
        _draw_legend(frame, lines, scale)
    return out


def _label(finding: Finding) -> str:
    return f"{finding.name} {finding.value:.3g} {finding.unit}"


def _frames_of(finding: Finding, count: int) -> Sequence[int]:
    """The frames a finding was measured on; every frame when it does not say."""
    inside = [f for f in finding.frames if 0 <= f < count]
    return inside if finding.frames else range(count)


def _draw_finding(
    frame: npt.NDArray[np.uint8],
    finding: Finding,
    colour: tuple[int, int, int],
    scale: float,
    thickness: int,
) -> None:
    points = np.rint(np.asarray(finding.points, dtype=np.float64)).astype(np.int32)
    if len(points) > 1:
        # Two points are a caliper; more are a traced contour, drawn closed.
        cv2.polylines(frame, [points.reshape(-1, 1, 2)], len(points) > 2, colour, thickness)
    if len(points) <= 2:
        for x, y in points:
            cv2.drawMarker(frame, (int(x), int(y)), colour, cv2.MARKER_CROSS, 7, thickness)
    x, y = (int(v) for v in points[-1])
    cv2.putText(frame, _label(finding), (x + 4, y), _FONT, scale, colour, 1, cv2.LINE_AA)


def _draw_legend(frame: npt.NDArray[np.uint8], lines: Sequence[str], scale: float) -> None:
    height = round(22 * scale) + 2
    width = max(cv2.getTextSize(line, _FONT, scale, 1)[0][0] for line in lines) + 6
    top = frame.shape[0] - height * len(lines) - 2
    # A dark band behind the text, so it reads on bright frames too.
    band = frame[max(top, 0) :, :width]
    band[...] = (band * 0.3).astype(np.uint8)
    for i, line in enumerate(lines):
        y = top + height * (i + 1) - 3
        cv2.putText(frame, line, (3, y), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
