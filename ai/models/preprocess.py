"""Frames to model tensors the way the EchoNet code feeds them, with the geometry to map back.

crop_window follows the lab's crop_and_scale (EchoNet-LVH utils, EchoPrime utils) to the pixel:
a frame wider than the output aspect loses int(round((w − r·h) / 2)) columns at each end, a
taller one int(round((h − w / r) / 2)) rows (r = output width / height, Python's round, so
halves go to even), then an optional zoom trims int(size · zoom) from every side (EchoPrime
truncates). Where that rounding leaves nothing to trim, the lab's slice `[0:-0]` would be empty;
here the axis is kept whole. The Geometry maps a point in the model's pixel grid back to source
pixels, using OpenCV's pixel-centre convention for resize (dst x ↔ src (x + 0.5)·scale − 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch

from ai.models.registry import ModelSpec

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Geometry:
    """Source window (x0, y0, width, height) resized to (out_width, out_height)."""

    x0: int
    y0: int
    width: int
    height: int
    out_width: int
    out_height: int

    @property
    def scale_x(self) -> float:
        return self.width / self.out_width

    @property
    def scale_y(self) -> float:
        return self.height / self.out_height

    def to_source(self, points: FloatArray) -> FloatArray:
        """(..., 2) (x, y) in the model grid → (..., 2) (x, y) in source pixels."""
        out = np.array(points, dtype=np.float64, copy=True)
        out[..., 0] = self.x0 + (out[..., 0] + 0.5) * self.scale_x - 0.5
        out[..., 1] = self.y0 + (out[..., 1] + 0.5) * self.scale_y - 0.5
        return out

    def to_model(self, points: FloatArray) -> FloatArray:
        out = np.array(points, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.x0 + 0.5) / self.scale_x - 0.5
        out[..., 1] = (out[..., 1] - self.y0 + 0.5) / self.scale_y - 0.5
        return out


def crop_window(
    rows: int,
    columns: int,
    out_width: int,
    out_height: int,
    zoom: float = 0.0,
    bounds: tuple[int, int, int, int] | None = None,
) -> Geometry:
    """The centred window of the output aspect, minus zoom·size on each side.

    bounds (x0, y0, width, height) restricts the window to part of the frame (a region).
    """
    x0, y0, width, height = bounds or (0, 0, columns, rows)
    target = out_width / out_height
    if width / height > target:
        pad = round((width - target * height) / 2)
        if pad > 0 and 2 * pad < width:
            x0, width = x0 + pad, width - 2 * pad
    elif width / height < target:
        pad = round((height - width / target) / 2)
        if pad > 0 and 2 * pad < height:
            y0, height = y0 + pad, height - 2 * pad
    if zoom > 0:
        pad_x, pad_y = int(width * zoom), int(height * zoom)
        if 2 * pad_x < width and 2 * pad_y < height:
            x0, y0 = x0 + pad_x, y0 + pad_y
            width, height = width - 2 * pad_x, height - 2 * pad_y
    return Geometry(x0, y0, width, height, out_width, out_height)


def crop_and_scale(
    frame: npt.NDArray[np.uint8],
    geometry: Geometry,
    interpolation: int = cv2.INTER_LINEAR,
) -> npt.NDArray[np.uint8]:
    """Cut geometry's window out of one (rows, columns, 3) frame and resize it."""
    g = geometry
    window = frame[g.y0 : g.y0 + g.height, g.x0 : g.x0 + g.width]
    resized = cv2.resize(window, (g.out_width, g.out_height), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)


def to_tensor(frames: npt.NDArray[np.uint8], spec: ModelSpec) -> torch.Tensor:
    """(N, H, W, 3) RGB uint8 → (N, 3, H, W) float32 in the model's colour order and scaling."""
    array = frames.astype(np.float32)
    if spec.colour_order == "BGR":
        array = array[..., ::-1]
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    array = ((array / np.float32(spec.scale) - mean) / std).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 1)))
