"""Where an overlay's legend may go: never on the anatomy, the scanner's regions or its text.

The legend is a block of text. It goes where the source shows nothing: outside the ultrasound
sector (ai/sector.py), outside every region of the Sequence of Ultrasound Regions (2D, spectral
Doppler, M-mode, ECG), and on pixels that are dark on every frame (so it never covers the
cart's own annotations, depth scale or ECG trace), with a margin. If no such place is large
enough, the canvas is widened: the SC gets a black panel right of the source image (the SC is a
new image; the source pixels keep their coordinates, so calipers stay where they were measured),
and made taller too if the legend, at its smallest type, is taller than the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.regions import tissue_region
from ai.sector import sector_mask

Mask = npt.NDArray[np.bool_]

DARK = 24  # a pixel brighter than this (any channel, any frame) shows something
MARGIN = 6  # pixels kept clear around everything the source shows


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def x1(self) -> int:
        return self.x + self.width

    @property
    def y1(self) -> int:
        return self.y + self.height


@dataclass(frozen=True)
class Placement:
    """The SC canvas and where the legend goes on it."""

    rows: int  # of the SC; >= the source's (more only for a legend taller than the image)
    columns: int  # of the SC; >= the source's
    box: Box  # the legend's box on the canvas


def anatomy_mask(frames: npt.NDArray[np.uint8], regions: tuple[UltrasoundRegion, ...]) -> Mask:
    """Pixels the legend must not cover: the sector, every region, anything lit on any frame."""
    rows, columns = frames.shape[1:3]
    if tissue_region(regions) is None:
        covered = sector_mask(Clip(ArrayFrames(frames), rows, columns, regions))
    else:  # the sector lies within the 2D region (sector_mask cuts it there), drawn below
        covered = np.zeros((rows, columns), dtype=bool)
    for region in regions:
        covered[region.min_y0 : region.max_y1 + 1, region.min_x0 : region.max_x1 + 1] = True
    covered |= frames.max(axis=0).max(axis=2) > DARK
    return covered


def place_legend(covered: Mask, width: int, height: int) -> Placement:
    """A free box of width × height for the legend, nearest a corner of the source image;
    else a panel right of the image, as wide as the legend needs."""
    rows, columns = covered.shape
    grown = cv2.dilate(
        covered.astype(np.uint8), np.ones((2 * MARGIN + 1, 2 * MARGIN + 1), np.uint8)
    ).astype(bool)
    spot = _free_spot(grown, width, height)
    if spot is not None:
        return Placement(rows, columns, Box(spot[0], spot[1], width, height))
    panel = width + 2 * MARGIN
    total = columns + panel + (columns + panel) % 2  # even: JPEG 4:2:2 subsamples in pairs
    return Placement(
        max(rows, height + 2 * MARGIN), total, Box(columns + MARGIN, MARGIN, width, height)
    )


def _free_spot(blocked: Mask, width: int, height: int) -> tuple[int, int] | None:
    """Top-left (x, y) of a box with no blocked pixel, nearest a corner; None if none fits."""
    rows, columns = blocked.shape
    if width > columns or height > rows:
        return None
    # Sum of blocked pixels in every width × height window, from the integral image.
    total = cv2.integral(blocked.astype(np.uint8))
    window = (
        total[height:, width:]
        - total[:-height, width:]
        - total[height:, :-width]
        + total[:-height, :-width]
    )
    ys, xs = np.nonzero(window == 0)
    if len(xs) == 0:
        return None
    right, bottom = columns - width, rows - height
    distance = np.minimum(xs, right - xs) + np.minimum(ys, bottom - ys)
    best = int(np.argmin(distance))  # nonzero scans rows top-down: ties go to the top
    return int(xs[best]), int(ys[best])
