"""Apical four-chamber anatomy: LV on the image right, RV on the left, atria below.

The LV cavity is half of an ellipse: its long semi-axis L runs from the mitral annulus (the
ellipse's centre) to the apex, its short semi-axis a is half the annulus width. Rotating that
outline about the long axis gives a half prolate ellipsoid of volume (2/3)·π·a²·L, which is
exactly what the single-plane method of disks returns for it. So a is chosen per frame from the
true volume and length: a = sqrt(3·V / (2·π·L)). The apex stays put; the base moves toward it
in systole, as a real heart's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ai.phantom.physiology import Patient
from ai.phantom.sector import HALF_ANGLE_DEG, Label, Labels, Points, Sector, fill, polyline

MYOCARDIUM_CM = 1.0
RV_WALL_CM = 0.45
ATRIAL_WALL_CM = 0.3
OUTLINE_POINTS = 65  # points on the half ellipse, annulus to annulus through the apex


@dataclass(frozen=True)
class A4cLayout:
    apex_cm: tuple[float, float]  # (x, z) of the LV apex (endocardium)
    tilt_rad: float  # long axis from vertical, positive leaning to the image right

    @property
    def axis(self) -> np.ndarray:
        """Unit vector from apex toward the base (deeper)."""
        return np.array([math.sin(self.tilt_rad), math.cos(self.tilt_rad)])

    @property
    def lateral(self) -> np.ndarray:
        """Unit vector toward the LV free wall (image right)."""
        return np.array([math.cos(self.tilt_rad), -math.sin(self.tilt_rad)])


@dataclass(frozen=True)
class A4cState:
    volume_ml: float
    length_cm: float
    valve_open: float

    @property
    def half_width_cm(self) -> float:
        return math.sqrt(3.0 * self.volume_ml / (2.0 * math.pi * self.length_cm))

    @property
    def area_cm2(self) -> float:
        return math.pi * self.half_width_cm * self.length_cm / 2.0


def half_ellipse(
    centre: np.ndarray,
    lateral: np.ndarray,
    toward: np.ndarray,
    a: float,
    length: float,
    n: int = OUTLINE_POINTS,
) -> Points:
    """Points from centre + a·lateral through centre + length·toward to centre − a·lateral."""
    alpha = np.linspace(0.0, math.pi, n)
    points: Points = (
        centre[None, :]
        + (a * np.cos(alpha))[:, None] * lateral[None, :]
        + (length * np.sin(alpha))[:, None] * toward[None, :]
    )
    return points


def lv_outline_cm(layout: A4cLayout, state: A4cState) -> Points:
    """The LV cavity outline in scan cm: lateral annulus → apex → septal annulus."""
    base = np.asarray(layout.apex_cm) + state.length_cm * layout.axis
    return half_ellipse(base, layout.lateral, -layout.axis, state.half_width_cm, state.length_cm)


def a4c_layout(patient: Patient, rng: np.random.Generator) -> tuple[A4cLayout, float]:
    """Layout and imaging depth: the whole LV cavity inside the fan, the atria below it.

    The apex starts near the top of the fan and moves deeper until the end-diastolic and
    end-systolic outlines fit 0.3 cm inside the fan's edges (a wide, short LV needs room).
    """
    x = float(rng.uniform(0.3, 0.8))
    z = float(rng.uniform(2.0, 2.6))
    tilt = math.radians(patient.a4c_tilt_deg)
    states = (
        A4cState(patient.edv_ml, patient.lv_length_ed_cm, 0.0),
        A4cState(patient.esv_ml, patient.lv_length_es_cm, 0.0),
    )
    for step in range(40):
        layout = A4cLayout(apex_cm=(x * (1 - step / 40), z + 0.25 * step), tilt_rad=tilt)
        depth = float(max(16.0, math.ceil(layout.apex_cm[1] + patient.lv_length_ed_cm + 5.5)))
        fan = Sector(0, 0, 100.0, math.radians(HALF_ANGLE_DEG), depth / 100.0)
        if all(fan.contains_cm(lv_outline_cm(layout, s), margin_cm=0.3) for s in states):
            return layout, depth
    raise RuntimeError("no A4C layout keeps this LV inside the fan")


def draw_a4c(labels: Labels, sector: Sector, layout: A4cLayout, state: A4cState) -> None:
    """Draw one frame into a label map already filled with TISSUE inside the fan."""
    axis, lateral = layout.axis, layout.lateral
    a, length = state.half_width_cm, state.length_cm
    base = np.asarray(layout.apex_cm) + length * axis
    a_rv, length_rv = 0.7 * a + 0.4, 0.8 * length
    rv_base = base - (a + MYOCARDIUM_CM + 0.35 + a_rv) * lateral
    la = (base + 0.15 * axis, 0.95 * a + 0.3, 4.2)
    ra = (rv_base + 0.15 * axis, a_rv + 0.2, 3.8)

    def put(points: Points, label: Label) -> None:
        fill(labels, sector, points, label)

    # Walls first (outer outlines), then blood pools, the LV cavity last.
    for centre, width, depth in (la, ra):
        put(half_ellipse(centre, lateral, axis, width + ATRIAL_WALL_CM, depth + 0.3), Label.WALL)
    lv_outer = (a + MYOCARDIUM_CM, length + MYOCARDIUM_CM + 0.3)
    rv_outer = (a_rv + RV_WALL_CM, length_rv + RV_WALL_CM + 0.3)
    put(half_ellipse(base + 0.3 * axis, lateral, -axis, *lv_outer), Label.WALL)
    put(half_ellipse(rv_base + 0.3 * axis, lateral, -axis, *rv_outer), Label.WALL)
    for centre, width, depth in (la, ra):
        put(half_ellipse(centre, lateral, axis, width, depth), Label.BLOOD)
    put(half_ellipse(rv_base, lateral, -axis, a_rv, length_rv), Label.BLOOD)
    put(lv_outline_cm(layout, state), Label.LV)
    # Mitral and tricuspid leaflets: open they point toward the apex, closed they meet.
    t = state.valve_open
    for centre, width in ((base, a), (rv_base, a_rv)):
        closed = centre - 0.35 * axis
        for side in (1.0, -1.0):
            root = centre + side * width * lateral
            open_tip = root - 1.6 * axis - side * 0.35 * width * lateral
            tip = (1 - t) * closed + t * open_tip
            polyline(labels, sector, np.stack([root, tip]), Label.VALVE, 0.12)
