"""The fan-shaped 2D image: geometry, speckle and the grey levels of tissue and blood.

Anatomy is drawn as a label map (one small integer per structure, see Label) in "scan"
coordinates: x in cm to the right of the transducer apex, z in cm of depth. The label map turns
into grey levels through a per-label echogenicity, a Rayleigh speckle texture and a depth gain,
all vectorised so that a 600×800 frame costs a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
import numpy.typing as npt

from ai.clip import UltrasoundRegion

Gray = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.uint8]
Float32 = npt.NDArray[np.float32]
Points = npt.NDArray[np.float64]  # (n, 2) as (x, y) pixels or (x, z) cm

SUBPIXEL_BITS = 4  # cv2 polygon coordinates in 1/16 pixel
HALF_ANGLE_DEG = 45.0  # a 90° sector, as cardiac phased arrays show


class Label(IntEnum):
    """Structures of the label map; echogenicity below."""

    OUTSIDE = 0
    TISSUE = 1  # far-field and surrounding tissue
    CHEST_WALL = 2
    BLOOD = 3  # any blood pool but the left ventricle
    IVS = 4
    LV = 5  # left-ventricular cavity: the mask the ground truth describes
    LVPW = 6
    PERICARDIUM = 7
    WALL = 8  # other myocardium and vessel walls
    VALVE = 9


ECHOGENICITY = np.array(
    [0.0, 0.24, 0.50, 0.035, 0.55, 0.035, 0.52, 0.90, 0.50, 0.75], dtype=np.float32
)


@dataclass(frozen=True)
class Sector:
    """A fan with its apex at an integer pixel (the Reference Pixel of the 2D region)."""

    apex_x: int
    apex_y: int
    radius_px: float
    half_angle_rad: float
    cm_per_px: float

    @property
    def depth_cm(self) -> float:
        return self.radius_px * self.cm_per_px

    def bounds(self) -> tuple[int, int, int, int]:
        """(min_x0, min_y0, max_x1, max_y1) of the fan, inclusive."""
        half_width = self.radius_px * math.sin(self.half_angle_rad)
        return (
            math.floor(self.apex_x - half_width),
            self.apex_y,
            math.ceil(self.apex_x + half_width),
            math.ceil(self.apex_y + self.radius_px),
        )

    def to_px(self, xz_cm: Points) -> Points:
        xz = np.asarray(xz_cm, dtype=np.float64)
        out = np.empty_like(xz)
        out[..., 0] = self.apex_x + xz[..., 0] / self.cm_per_px
        out[..., 1] = self.apex_y + xz[..., 1] / self.cm_per_px
        return out

    def contains_cm(self, xz_cm: Points, margin_cm: float = 0.0) -> bool:
        """True when every point lies inside the fan, margin_cm away from its edges."""
        xz = np.asarray(xz_cm, dtype=np.float64)
        r = np.hypot(xz[:, 0], xz[:, 1])
        angle = np.arctan2(xz[:, 0], xz[:, 1])
        edge_distance = r * np.sin(self.half_angle_rad - np.abs(angle))
        return bool(np.all((edge_distance >= margin_cm) & (r <= self.depth_cm - margin_cm)))

    def mask(self, rows: int, columns: int) -> npt.NDArray[np.bool_]:
        y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
        dx = x - self.apex_x
        dy = y - self.apex_y
        r = np.hypot(dx, dy)
        angle = np.abs(np.arctan2(dx, dy))
        inside: npt.NDArray[np.bool_] = (r <= self.radius_px) & (angle <= self.half_angle_rad)
        return inside


def fit_sector(depth_cm: float, top: int, bottom: int, left: int, right: int) -> Sector:
    """The largest fan with the given depth that fits in the box [top, bottom] × [left, right]."""
    half = math.radians(HALF_ANGLE_DEG)
    apex_x = (left + right) // 2
    radius = min(bottom - top, (min(apex_x - left, right - apex_x) - 1) / math.sin(half))
    if radius < 20:
        raise ValueError("image too small for a sector (need at least ~40×60 pixels)")
    return Sector(apex_x, top, float(radius), half, depth_cm / float(radius))


def fill(labels: Labels, sector: Sector, polygon_cm: Points, label: Label) -> None:
    """Fill a polygon given in scan cm with a label, at 1/16-pixel precision."""
    px = sector.to_px(polygon_cm) * (1 << SUBPIXEL_BITS)
    cv2.fillPoly(labels, [np.round(px).astype(np.int32)], int(label), cv2.LINE_8, SUBPIXEL_BITS)


def polyline(
    labels: Labels, sector: Sector, points_cm: Points, label: Label, thickness_cm: float
) -> None:
    px = sector.to_px(points_cm) * (1 << SUBPIXEL_BITS)
    thickness = max(1, round(thickness_cm / sector.cm_per_px))
    cv2.polylines(
        labels,
        [np.round(px).astype(np.int32)],
        False,
        int(label),
        thickness,
        cv2.LINE_8,
        SUBPIXEL_BITS,
    )


def band(
    u: npt.NDArray[np.float64],
    v_top: npt.NDArray[np.float64],
    v_bottom: npt.NDArray[np.float64],
) -> Points:
    """Polygon in (u, v) between two edges sampled at the same u."""
    top = np.stack([u, v_top], axis=1)
    bottom = np.stack([u[::-1], v_bottom[::-1]], axis=1)
    return np.concatenate([top, bottom])


@dataclass(frozen=True)
class Speckle:
    """Per-clip textures: two Rayleigh fields cross-faded over time, plus the fan's gain."""

    a: Float32
    b: Float32
    gain: Float32  # depth/lateral gain, zero outside the fan


def make_speckle(rng: np.random.Generator, sector: Sector, rows: int, columns: int) -> Speckle:
    def field() -> Float32:
        re = rng.standard_normal((rows, columns), dtype=np.float32)
        im = rng.standard_normal((rows, columns), dtype=np.float32)
        # Speckle cells are longer across the beam than along it.
        re_blur = cv2.GaussianBlur(re, (0, 0), sigmaX=1.6, sigmaY=0.7)
        im_blur = cv2.GaussianBlur(im, (0, 0), sigmaX=1.6, sigmaY=0.7)
        magnitude = np.sqrt(re_blur * re_blur + im_blur * im_blur)
        return (magnitude / float(magnitude.mean())).astype(np.float32)

    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    dx = x - sector.apex_x
    dy = y - sector.apex_y
    r = np.hypot(dx, dy) / sector.radius_px
    angle = np.abs(np.arctan2(dx, dy)) / sector.half_angle_rad
    gain = (1.05 - 0.35 * r) * (1.0 - 0.35 * angle**6)
    gain = np.where(sector.mask(rows, columns), gain, 0.0).astype(np.float32)
    return Speckle(field(), field(), gain)


def render(labels: Labels, speckle: Speckle, fade: float) -> Gray:
    """Grey levels of a label map; fade in [0, 1] moves between the two speckle fields."""
    # A small blur softens the drawn edges without moving them (symmetric kernel).
    base = cv2.GaussianBlur(ECHOGENICITY[labels], (0, 0), sigmaX=1.0)
    texture = cv2.addWeighted(speckle.a, 1.0 - fade, speckle.b, fade, 0.0)
    image = base * texture * speckle.gain * 235.0 + 6.0 * speckle.gain
    return np.clip(image, 0, 255).astype(np.uint8)


def depth_marks(image: npt.NDArray[np.uint8], sector: Sector) -> None:
    """White dots every centimetre down the right edge of the fan, as scanners draw them."""
    _, _, x1, _ = sector.bounds()
    x = min(x1 + 4, image.shape[1] - 2)
    if x <= x1:
        return
    for cm in range(1, int(sector.depth_cm) + 1):
        y = round(sector.apex_y + cm / sector.cm_per_px)
        if y < image.shape[0] - 1:
            size = 2 if cm % 5 == 0 else 1
            image[max(0, y - size + 1) : y + size, x - size + 1 : x + size] = 220


def tissue_region(sector: Sector) -> UltrasoundRegion:
    """The 2D tissue region of a fan: cm on both axes, reference pixel at the apex."""
    x0, y0, x1, y1 = sector.bounds()
    return UltrasoundRegion(
        spatial_format=1,
        data_type=1,
        flags=0,
        min_x0=x0,
        min_y0=y0,
        max_x1=x1,
        max_y1=y1,
        physical_units_x=3,
        physical_units_y=3,
        physical_delta_x=sector.cm_per_px,
        physical_delta_y=sector.cm_per_px,
        reference_pixel_x0=sector.apex_x - x0,
        reference_pixel_y0=sector.apex_y - y0,
        reference_physical_value_x=0.0,
        reference_physical_value_y=0.0,
    )
