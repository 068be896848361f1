"""The PDF report's pictures, drawn with matplotlib into images: a source frame with its calipers,
a curve over the clip with its end-diastolic and end-systolic frames, and a Doppler spectrum
with the traced envelope and the peaks.

Each function makes its own Figure (no pyplot state), so workers can draw in parallel. The
calipers are drawn here from the report's points, not taken from the overlay SCs: the PDF
shows where each reported value was measured, on the frame it was measured on.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Point = tuple[float, float]
Image = npt.NDArray[np.uint8]

CALIPER = "#ffd400"  # yellow reads on grey ultrasound and on colour Doppler
ENVELOPE = "#00d0ff"
PEAK = "#ff3b30"
ED_COLOUR = "#d62728"
ES_COLOUR = "#1f77b4"
_DPI = 150


@dataclass(frozen=True)
class Mark:
    """One caliper: two points are a line, one point a cross; `label` is written beside it."""

    points: tuple[Point, ...]
    label: str


@dataclass(frozen=True)
class Curve:
    """A value per frame, and the frames of end-diastole and end-systole to mark on it."""

    seconds: tuple[float, ...]  # x: time of each value (or the frame number, see x_label)
    values: tuple[float, ...]
    y_label: str
    x_label: str
    ed: tuple[float, ...]  # x of each end-diastole
    es: tuple[float, ...]


@dataclass(frozen=True)
class Spectrum:
    """A spectral Doppler strip cut from its frame, with its calibration for the axes."""

    image: Image  # the region's pixels
    seconds_per_column: float | None
    top_velocity: float  # cm/s at the strip's first row
    bottom_velocity: float  # cm/s below its last row
    envelope: tuple[Point, ...]  # (column, row) in strip pixels
    peaks: tuple[Mark, ...]  # points in strip pixels


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _jpeg(figure: Figure) -> bytes:
    """Ultrasound pixels (speckle) compress many times smaller as JPEG than as PNG."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", dpi=_DPI, pil_kwargs={"quality": 85})
    return buffer.getvalue()


def frame_with_calipers(image: Image, marks: Sequence[Mark], width_in: float = 3.6) -> bytes:
    """The frame as it was measured, each caliper drawn and labelled."""
    rows, columns = image.shape[:2]
    figure = Figure(figsize=(width_in, width_in * rows / columns))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(image, interpolation="bilinear")
    for mark in marks:
        xs = [p[0] for p in mark.points]
        ys = [p[1] for p in mark.points]
        if len(mark.points) >= 2:
            axes.plot(xs, ys, color=CALIPER, linewidth=1.4, marker="+", markersize=8)
        else:
            axes.plot(xs, ys, color=CALIPER, marker="x", markersize=8, markeredgewidth=1.6)
        # Beside the caliper, on the side with room for the text.
        right = max(xs) < 0.6 * columns
        axes.annotate(
            mark.label,
            (max(xs) if right else min(xs), min(ys)),
            xytext=(4 if right else -4, 0),
            textcoords="offset points",
            ha="left" if right else "right",
            color="black",
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": CALIPER, "edgecolor": "none"},
        )
    axes.set_xlim(0, columns)
    axes.set_ylim(rows, 0)
    axes.set_axis_off()
    return _jpeg(figure)


def curve(data: Curve, width_in: float = 6.8) -> bytes:
    """The curve with a line at each end-diastole (red) and end-systole (blue)."""
    figure = Figure(figsize=(width_in, 2.2), layout="constrained")
    axes = figure.add_subplot()
    x = np.asarray(data.seconds, dtype=np.float64)
    y = np.asarray(data.values, dtype=np.float64)
    axes.plot(x, y, color="black", linewidth=1.2)
    for at, colour, name in (
        (data.ed, ED_COLOUR, "end-diastole"),
        (data.es, ES_COLOUR, "end-systole"),
    ):
        for i, position in enumerate(at):
            axes.axvline(
                position,
                color=colour,
                linewidth=1.0,
                linestyle="--",
                label=name if i == 0 else None,
            )
    axes.set_xlabel(data.x_label, fontsize=8)
    axes.set_ylabel(data.y_label, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    if data.ed or data.es:
        axes.legend(fontsize=7, loc="upper right")
    return _png(figure)


def spectrum(data: Spectrum, width_in: float = 6.8) -> bytes:
    """The strip in its velocity and time scale, the envelope traced over it, the peaks marked."""
    rows, columns = (int(n) for n in data.image.shape[:2])
    seconds = data.seconds_per_column
    x_end = columns * seconds if seconds else float(columns)
    figure = Figure(
        figsize=(width_in, max(1.6, width_in * rows / columns) + 0.5), layout="constrained"
    )
    axes = figure.add_subplot()
    extent = (0.0, x_end, data.bottom_velocity, data.top_velocity)
    axes.imshow(data.image, extent=extent, aspect="auto", interpolation="bilinear")

    def x_of(column: float) -> float:
        return (column + 0.5) * (seconds or 1.0)

    def v_of(row: float) -> float:
        step = (data.bottom_velocity - data.top_velocity) / rows
        return data.top_velocity + (row + 0.5) * step

    if data.envelope:
        axes.plot(
            [x_of(c) for c, _ in data.envelope],
            [v_of(r) for _, r in data.envelope],
            color=ENVELOPE,
            linewidth=1.0,
            label="traced envelope",
        )
    for i, peak in enumerate(data.peaks):
        (column, row) = peak.points[0]
        axes.plot(
            x_of(column), v_of(row), "o", color=PEAK, markersize=5, label="peak" if i == 0 else None
        )
        axes.annotate(
            peak.label,
            (x_of(column), v_of(row)),
            xytext=(4, 4),
            textcoords="offset points",
            color="white",
            fontsize=7,
        )
    axes.set_xlim(0, x_end)
    axes.set_ylim(data.bottom_velocity, data.top_velocity)
    axes.set_xlabel("time (s)" if seconds else "column", fontsize=8)
    axes.set_ylabel("velocity (cm/s)", fontsize=8)
    axes.tick_params(labelsize=7)
    if data.envelope or data.peaks:
        axes.legend(fontsize=7, loc="lower right")
    return _jpeg(figure)
