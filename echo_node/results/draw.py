"""Burning an overlay plan into the frames: the legend once, the calipers frame by frame.

Text is Pillow's built-in scalable font (no font file to install), anti-aliased; calipers are
OpenCV lines and markers over a black outline, so they read on bright speckle and dark blood
alike. `render_overlay` returns the frames with a record of every text it drew and where
(`Rendering`), so tests compare pixels with text rendered from the report instead of reading
pixels back.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from ai.clip import UltrasoundRegion
from echo_node.results.catalogue import Geometry
from echo_node.results.layout import MARGIN, Box, Placement, anatomy_mask, place_legend
from echo_node.results.overlay import (
    DISCLAIMER,
    NOTE,
    RGB,
    TEXT,
    TITLE,
    Caliper,
    OverlayPlan,
)

Patch = npt.NDArray[np.uint8]
BLACK: RGB = (0, 0, 0)
_PAD = 4  # inside the legend box


@dataclass(frozen=True)
class TextItem:
    """A text drawn on the SC: where, in which colour, on which frames."""

    text: str
    colour: RGB
    x: int  # top-left of its patch on the canvas
    y: int
    size: int  # font size in pixels
    frames: frozenset[int] | None = None  # None: every frame
    inverted: bool = False  # dark text on a box of `colour` (the frame tag)
    outlined: bool = False  # on the image, with a black outline (caliper numbers)

    def shown_on(self, frame: int) -> bool:
        return self.frames is None or frame in self.frames

    def patch(self) -> Patch:
        return text_patch(self.text, self.colour, self.size, inverted=self.inverted)


@dataclass(frozen=True)
class Rendering:
    frames: npt.NDArray[np.uint8]  # (N, rows, columns, 3), columns >= the source's
    plan: OverlayPlan
    placement: Placement
    legend: tuple[TextItem, ...]
    tags: tuple[TextItem, ...]  # caliper numbers beside the calipers
    source_rows: int
    source_columns: int

    @property
    def widened(self) -> bool:
        return self.placement.columns > self.source_columns

    @property
    def lengthened(self) -> bool:
        return self.placement.rows > self.source_rows


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def text_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) of a text's patch: the text plus padding, one line's height."""
    left, _, right, _ = font(size).getbbox(text)
    ascent, descent = font(size).getmetrics()  # type: ignore[union-attr]
    return int(right - min(left, 0)) + 2 * _PAD, int(ascent + descent) + 2


@functools.lru_cache(maxsize=256)
def _patch(text: str, colour: RGB, size: int, inverted: bool) -> Patch:
    width, height = text_size(text, size)
    image = Image.new("RGB", (width, height), colour if inverted else BLACK)
    ImageDraw.Draw(image).text((_PAD, 1), text, fill=BLACK if inverted else colour, font=font(size))
    patch = np.asarray(image, dtype=np.uint8)
    patch.flags.writeable = False
    return patch


def text_patch(text: str, colour: RGB, size: int, *, inverted: bool = False) -> Patch:
    """The pixels of one line of legend text on black (or black on `colour`)."""
    return _patch(text, colour, size, inverted)


@functools.lru_cache(maxsize=64)
def _outlined(text: str, colour: RGB, size: int) -> tuple[Patch, npt.NDArray[np.float32]]:
    """A caliper number with a black outline, and its opacity, to lay over the image."""
    width, height = text_size(text, size)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).text(
        (_PAD, 1), text, fill=(*colour, 255), font=font(size), stroke_width=2, stroke_fill=BLACK
    )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., :3].copy(), pixels[..., 3:].astype(np.float32) / 255.0


def font_size(rows: int) -> int:
    return int(min(22, max(11, round(rows / 34))))


def render_overlay(
    frames: npt.NDArray[np.uint8], plan: OverlayPlan, regions: Sequence[UltrasoundRegion]
) -> Rendering:
    """`frames` (N, rows, columns, 3) with the plan's legend and calipers burned in."""
    count, rows, columns = frames.shape[:3]
    covered = anatomy_mask(frames, tuple(regions))
    size = font_size(rows)
    legend_rows, width = _legend_rows(plan, size)
    while _height(legend_rows, size) > rows - 2 * MARGIN and size > 8:  # short image: smaller
        size -= 1
        legend_rows, width = _legend_rows(plan, size)
    height = _height(legend_rows, size)
    placement = place_legend(covered, width, height)
    canvas = np.zeros((count, placement.rows, placement.columns, 3), dtype=np.uint8)
    canvas[:, :rows, :columns] = frames
    legend = _position(legend_rows, size, placement.box, count)
    _burn_legend(canvas, placement.box, legend)
    thickness = max(1, round(rows / 320))
    tags = _tags(plan.calipers, max(9, size - 2), thickness, columns, rows)
    for index in range(count):
        # A caliper held from another frame is thinner and drawn first, so the ones measured
        # on this frame lie on top where they cross (LVIDs held over the ED frame's LVIDd).
        for caliper in sorted(plan.calipers_on(index), key=lambda c: c.frame == index):
            _draw_caliper(canvas[index], caliper, thickness, held=caliper.frame != index)
        for tag in tags:
            if tag.shown_on(index):
                _lay_over(canvas[index], tag)
    return Rendering(canvas, plan, placement, legend, tags, rows, columns)


# --- the legend -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    text: str
    colour: RGB
    highlight: frozenset[int] = frozenset()  # frames on which the row is inverted (a tag)


def _legend_rows(plan: OverlayPlan, size: int) -> tuple[list[_Row], int]:
    """The legend's rows, top down, and the widest row's patch width: title, values,
    footnotes, ED/ES frames, disclaimer; footnotes wrapped to the widest of the others."""
    head = [_Row(TITLE, TEXT), *(_Row(entry.text, entry.colour) for entry in plan.entries)]
    phases = [_Row(phase.text, NOTE, frozenset(phase.frames)) for phase in plan.phases]
    width = max(text_size(row.text, size)[0] for row in (*head, *phases, _Row(DISCLAIMER, NOTE)))
    notes = [
        _Row(text if index == 0 else f"   {text}", NOTE)  # a wrapped footnote's lines indented
        for note in plan.footnotes
        for index, text in enumerate(_wrap(note, size, width - text_size("   ", size)[0]))
    ]
    tail = [_Row(text, NOTE) for text in _wrap(DISCLAIMER, size, width)]
    rows = [*head, *notes, *phases, *tail]
    return rows, max(text_size(row.text, size)[0] for row in rows)


def _height(rows: Sequence[_Row], size: int) -> int:
    return len(rows) * text_size("Ag", size)[1] + 2 * _PAD


def _wrap(text: str, size: int, width: int) -> list[str]:
    """Words of `text` in lines no wider than `width` (a longer word stands alone)."""
    out: list[str] = []
    for word in text.split():
        if out and text_size(f"{out[-1]} {word}", size)[0] <= width:
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    return out


def _position(rows: Sequence[_Row], size: int, box: Box, count: int) -> tuple[TextItem, ...]:
    items: list[TextItem] = []
    line_height = text_size("Ag", size)[1]
    for index, row in enumerate(rows):
        y = box.y + _PAD + index * line_height
        if not row.highlight:
            items.append(TextItem(row.text, row.colour, box.x, y, size))
            continue
        plain = frozenset(range(count)) - row.highlight
        items.append(TextItem(row.text, row.colour, box.x, y, size, plain))
        items.append(TextItem(row.text, row.colour, box.x, y, size, row.highlight, True))
    return tuple(items)


def _burn_legend(canvas: npt.NDArray[np.uint8], box: Box, legend: Sequence[TextItem]) -> None:
    canvas[:, box.y : box.y1, box.x : box.x1] = 0
    for item in legend:
        patch = item.patch()
        height, width = patch.shape[:2]
        target = np.s_[item.y : item.y + height, item.x : item.x + width]
        if item.frames is None:
            canvas[:, target[0], target[1]] = patch
        else:
            for index in item.frames:
                canvas[index][target] = patch


# --- calipers -----------------------------------------------------------------------------


def _pixel(point: tuple[float, float]) -> tuple[int, int]:
    return round(point[0]), round(point[1])


def _draw_caliper(
    frame: npt.NDArray[np.uint8], caliper: Caliper, thickness: int, held: bool = False
) -> None:
    """The caliper's line (thinner when held from another frame) and a cross on each point,
    each over a black outline."""
    points = [_pixel(p) for p in caliper.points]
    marker = 4 * thickness + 7 + (4 if caliper.geometry is Geometry.POINTS else 0)
    line_width = max(1, thickness - 1) if held else thickness
    for colour, extra in ((BLACK, 2), (caliper.colour, 0)):
        if caliper.geometry is Geometry.LINE:
            line = np.array(points, np.int32).reshape(-1, 1, 2)
            cv2.polylines(frame, [line], False, colour, line_width + extra)
        for point in points:
            cv2.drawMarker(
                frame, point, colour, cv2.MARKER_CROSS, marker + extra, thickness + extra
            )


def _tags(
    calipers: Sequence[Caliper], size: int, thickness: int, columns: int, rows: int
) -> tuple[TextItem, ...]:
    """Each caliper's number beside it (right of a line's middle or of a peak mark; left, or
    lower, where another number already stands on the same frames), on its frames."""
    tags: list[TextItem] = []
    for caliper in calipers:
        text = str(caliper.number)
        width, height = text_size(text, size)
        points = np.array(caliper.points, dtype=np.float64)
        x, y = _pixel(tuple(points.mean(axis=0)) if len(points) > 1 else caliper.points[0])
        gap = 2 * thickness + 8
        frames = frozenset(range(caliper.first, caliper.last + 1))
        spots = [(x + gap, y - height // 2), (x - gap - width, y - height // 2)]
        spots += [(x + gap, y - height // 2 + step * height) for step in (1, -1, 2, -2)]
        placed = [
            (_inside(left, width, columns), _inside(top, height, rows)) for left, top in spots
        ]
        taken = [t for t in tags if t.frames is not None and t.frames & frames]
        free = [p for p in placed if not any(_overlap(p, (width, height), t) for t in taken)]
        left, top = (free or placed)[0]
        tags.append(TextItem(text, caliper.colour, left, top, size, frames, outlined=True))
    return tuple(tags)


def _inside(start: int, extent: int, limit: int) -> int:
    return min(max(start, 0), max(limit - extent, 0))


def _overlap(spot: tuple[int, int], extent: tuple[int, int], other: TextItem) -> bool:
    width, height = text_size(other.text, other.size)
    return (
        spot[0] < other.x + width
        and other.x < spot[0] + extent[0]
        and spot[1] < other.y + height
        and other.y < spot[1] + extent[1]
    )


def _lay_over(frame: npt.NDArray[np.uint8], tag: TextItem) -> None:
    colours, alpha = _outlined(tag.text, tag.colour, tag.size)
    height, width = alpha.shape[:2]
    target = frame[tag.y : tag.y + height, tag.x : tag.x + width]
    inside = np.s_[: target.shape[0], : target.shape[1]]  # a tag at the image's edge
    colours, alpha = colours[inside], alpha[inside]
    target[...] = (colours * alpha + target * (1.0 - alpha) + 0.5).astype(np.uint8)
