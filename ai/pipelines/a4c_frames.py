"""EchoNet-Dynamic's input frames: the lab's DICOM → 112×112 conversion, on ai.decode's RGB frames.

The conversion the Dynamic models were trained on (echonet/dynamic, ConvertDICOMToAVI notebook;
docs/METHODS.md, "A4C"), step by step, from frame 0 for the whole clip:

1. Header crop: the frame is cut from its first "black row" down, the first row whose mean over
   every column and channel is below 1.
2. Square: the longer side loses |h − w| // 2 pixels at each end (so an odd difference leaves
   the window one pixel longer along that side, as the notebook's slicing does).
3. Border: height // 10 pixels off every side, the height used for both axes.
4. Channel 0 of the frame, resized to 112×112 with INTER_CUBIC.
5. Corner mask: pixels with x + y ≤ d//2 + d//10 or x − y ≥ d//2 + d//10 set to 0 (d = 112:
   67), the two triangles above the fan.
6. The channel replicated to three.

The notebook's rule can only find a black row in RGB-like frames (in raw YBR a black row's mean
is about 85, the crash of echonet/dynamic#36), so it runs on the RGB frames ai.decode hands out
and channel 0 is red; on grey echo pixels red equals luma. Where frame 0 has no black row the
notebook raises; where its first black row is in the lower half, the notebook would keep a
sliver of the image under it. In both cases the window is instead the square of the 2D tissue
region (else of the whole frame) with the same border, and the clip is flagged
WINDOW_FROM_REGION (or WINDOW_FROM_FRAME). Steps 4–6 are the same on both paths. The notebook
then writes an MJPG AVI that the training code reads back; that lossy round trip is not
reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import Clip, Frame
from ai.models.preprocess import Geometry, crop_window
from ai.regions import tissue_region

WINDOW_FROM_REGION = "window_from_tissue_region"
WINDOW_FROM_FRAME = "window_from_whole_frame"
BLACK_ROW_MEAN = 1.0  # the notebook's threshold on a row's mean (0–255 scale)

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Window:
    """The source window of a clip and the flags saying how it was found."""

    geometry: Geometry
    flags: tuple[str, ...] = ()


def first_black_row(frame: Frame) -> int | None:
    """Index of the first row whose mean over columns and channels is below 1, or None."""
    means = frame.reshape(frame.shape[0], -1).mean(axis=1)
    rows = np.flatnonzero(means < BLACK_ROW_MEAN)
    return int(rows[0]) if len(rows) else None


def reference_window(
    rows: int, columns: int, top: int, size: tuple[int, int], border: float = 0.1
) -> Geometry | None:
    """Steps 1–3 as source pixels: the window below row `top`, or None when nothing is left.

    size is the output (height, width); border the fraction of the height cut on every side.
    """
    x0, y0, width, height = 0, top, columns, rows - top
    bias = abs(height - width) // 2
    if bias > 0 and height < width:
        x0, width = bias, width - 2 * bias
    elif bias > 0:
        y0, height = y0 + bias, height - 2 * bias
    cut = int(height * border)
    # Rows and columns both run [cut, height − cut) of the square; a slice past the end stops at
    # the edge, as numpy's does in the notebook.
    right = min(height - cut, width)
    if height - 2 * cut <= 0 or right - cut <= 0:
        return None
    return Geometry(x0 + cut, y0 + cut, right - cut, height - 2 * cut, size[1], size[0])


def clip_window(clip: Clip, size: tuple[int, int], border: float = 0.1) -> Window:
    """The reference window of the clip (from frame 0), else the tissue region's, flagged."""
    if len(clip):
        top = first_black_row(clip.frames[0])
        if top is not None and top < clip.rows // 2:
            geometry = reference_window(clip.rows, clip.columns, top, size, border)
            if geometry is not None:
                return Window(geometry)
    region = tissue_region(clip.regions)
    if region is None:
        geometry = crop_window(clip.rows, clip.columns, size[1], size[0], border)
        return Window(geometry, (WINDOW_FROM_FRAME,))
    bounds = (region.min_x0, region.min_y0, region.width, region.height)
    geometry = crop_window(clip.rows, clip.columns, size[1], size[0], border, bounds)
    return Window(geometry, (WINDOW_FROM_REGION,))


def corner_mask(height: int, width: int) -> Mask:
    """Step 5: True where the pixel is kept (the threshold from the height, as the notebook)."""
    limit = height // 2 + height // 10
    y, x = np.mgrid[0:height, 0:width]
    mask: Mask = ((x + y) > limit) & ((x - y) < limit)
    return mask


def dynamic_frames(frames: npt.NDArray[np.uint8], geometry: Geometry) -> npt.NDArray[np.uint8]:
    """(N, rows, columns, 3) RGB → (N, h, w, 3): steps 4–6 on the window."""
    g = geometry
    channel = frames[:, g.y0 : g.y0 + g.height, g.x0 : g.x0 + g.width, 0]
    keep = corner_mask(g.out_height, g.out_width)
    out = np.empty((len(frames), g.out_height, g.out_width), np.uint8)
    for index, window in enumerate(channel):
        small = cv2.resize(
            np.ascontiguousarray(window), (g.out_width, g.out_height), interpolation=cv2.INTER_CUBIC
        )
        out[index] = np.where(keep, small, 0)
    return np.repeat(out[..., None], 3, axis=-1)
