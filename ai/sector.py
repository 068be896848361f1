"""The ultrasound fan of a 2D clip as a mask: pixels outside it (ECG trace, text, scales) zeroed.

The reference (EchoPrime's preprocessing, see docs/METHODS.md, "Views") masks
before classifying: pixels lit in the clip, eroded to remove thin overlays such as the ECG
trace, kept where the image changes over time, grown back, holes filled, convex hull. Here:

1. Sample up to `max_frames` frames evenly; a pixel is lit if any sampled frame shows more than
   `level` in any channel.
2. With several frames, keep pixels whose value changes between the sampled frames: tissue
   moves and speckle decorrelates, burned-in text and calibration marks do not.
3. Strongly coloured pixels (the usual green ECG trace) are not tissue.
4. Close small speckle holes (2-pixel disc), then open with a `radius`-pixel disc (erode then
   dilate): lines and characters thinner than 2 × radius vanish, the fan keeps its shape.
5. The largest connected part, holes filled, convex hull (a fan is convex).
6. Inside the 2D tissue region when the clip has one.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import Clip, Frame
from ai.regions import tissue_region

Mask = npt.NDArray[np.bool_]


def _sample(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def sector_mask(clip: Clip, max_frames: int = 16, level: int = 8, radius: int = 5) -> Mask:
    """Boolean (rows, columns) mask of the ultrasound fan of a 2D clip (see module doc)."""
    indices = _sample(len(clip), max_frames)
    frames = np.stack([clip.frames[i] for i in indices]).astype(np.int16)  # (n, rows, cols, 3)
    brightest = frames.max(axis=3)
    lit = (brightest > level).any(axis=0)
    if len(indices) > 1:
        changing = (brightest.max(axis=0) - brightest.min(axis=0)) > level
        lit &= changing
    chroma = (frames.max(axis=3) - frames.min(axis=3)).max(axis=0)
    lit &= chroma <= 60
    # Close first: speckle leaves dark pixels inside the fan, which opening would spread.
    small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closed = cv2.morphologyEx(lit.astype(np.uint8), cv2.MORPH_CLOSE, small)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    opened = cv2.morphologyEx(closed, cv2.MORPH_OPEN, disc)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    mask = np.zeros(lit.shape, dtype=np.uint8)
    if count > 1:
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        points = np.argwhere(labels == largest)[:, ::-1].astype(np.int32)  # (x, y)
        hull = cv2.convexHull(points)
        cv2.fillConvexPoly(mask, hull, 1)
    region = tissue_region(clip.regions)
    if region is not None:
        inside = np.zeros_like(mask)
        inside[region.min_y0 : region.max_y1 + 1, region.min_x0 : region.max_x1 + 1] = 1
        mask &= inside
    result: Mask = mask.astype(bool)
    return result


def apply_mask(frame: Frame, mask: Mask) -> Frame:
    """The frame with every pixel outside the mask set to black."""
    out: Frame = np.where(mask[..., None], frame, 0).astype(np.uint8)
    return out
