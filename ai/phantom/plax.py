"""Parasternal long-axis anatomy: RV, septum, LV cavity, posterior wall, aortic root and LA.

The left ventricle is laid out in its own frame: u (cm) along the long axis, positive toward the
base and aorta (image right), v (cm) across it, positive posterior (deeper). The measurement line
is u = 0, where both walls run parallel to the axis, so the four EchoNet-LVH keypoints lie on
the label boundaries the frame draws: pt0 LVPW epicardium, pt1 LVPW endocardium, pt2 IVS LV
side, pt3 IVS RV side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ai.phantom.physiology import Patient
from ai.phantom.sector import Label, Labels, Points, Sector, band, fill, polyline

CHEST_WALL_CM = 1.1
RV_WALL_CM = 0.4
PERICARDIUM_CM = 0.3
BASE_U_CM = 2.0  # mitral annulus, along the axis from the measurement line
TAPER_U_CM = -1.5  # where the cavity starts to narrow toward the apex
AORTA_CM = 3.0
AORTIC_WALL_CM = 0.25


@dataclass(frozen=True)
class PlaxLayout:
    """Where the heart sits in the scan: measurement point and axis tilt."""

    origin_cm: tuple[float, float]  # (x, z) of the measurement point on the LV axis
    tilt_rad: float
    apex_taper_cm: float
    la_radius_cm: float
    rv_depth_cm: float

    def to_scan(self, uv: Points) -> Points:
        u = uv[..., 0]
        v = uv[..., 1]
        c, s = math.cos(self.tilt_rad), math.sin(self.tilt_rad)
        x = self.origin_cm[0] + u * c + v * s
        z = self.origin_cm[1] - u * s + v * c
        return np.stack([x, z], axis=-1)


@dataclass(frozen=True)
class PlaxState:
    """Wall thicknesses and cavity size of one frame, in cm."""

    ivs_cm: float
    lvid_cm: float
    lvpw_cm: float
    valve_open: float  # 0 closed (systole) .. 1 open (diastole)


def plax_layout(patient: Patient, rng: np.random.Generator) -> tuple[PlaxLayout, float]:
    """The layout and the imaging depth it needs."""
    tilt = math.radians(patient.plax_tilt_deg)
    above = patient.lvidd_cm / 2 + patient.ivss_cm + patient.rv_depth_cm + RV_WALL_CM
    z = CHEST_WALL_CM + 0.3 + above * math.cos(tilt)
    below = patient.lvidd_cm / 2 + max(patient.lvpwd_cm, patient.lvpws_cm) + 3.0
    depth = max(15.0, math.ceil(z + below))
    layout = PlaxLayout(
        # Left of centre, so the aortic root and LA to the right of the LV stay in the fan.
        origin_cm=(float(rng.uniform(-1.5, -0.5)), z),
        tilt_rad=tilt,
        apex_taper_cm=float(rng.uniform(4.5, 6.0)),
        la_radius_cm=float(rng.uniform(1.6, 2.1)),
        rv_depth_cm=patient.rv_depth_cm,
    )
    return layout, float(depth)


def _half_widths(
    u: np.ndarray, state: PlaxState, taper: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cavity half-width and the outer edges of septum and posterior wall along the axis."""
    half = state.lvid_cm / 2
    d = np.clip(TAPER_U_CM - u, 0.0, None)

    def ellipse(radius: float, length: float) -> np.ndarray:
        out: np.ndarray = radius * np.sqrt(np.clip(1.0 - (d / length) ** 2, 0.0, 1.0))
        return out

    cavity = ellipse(half, taper)
    septum = ellipse(half + state.ivs_cm, taper + state.ivs_cm)
    posterior = ellipse(half + state.lvpw_cm, taper + state.lvpw_cm)
    return cavity, septum, posterior


def draw_plax(labels: Labels, sector: Sector, layout: PlaxLayout, state: PlaxState) -> None:
    """Draw one frame into a label map already filled with TISSUE inside the fan."""

    def put(uv: Points, label: Label) -> None:
        fill(labels, sector, layout.to_scan(uv), label)

    taper = layout.apex_taper_cm
    u = np.linspace(TAPER_U_CM - taper - 1.5, BASE_U_CM, 90)
    cavity, septum, posterior = _half_widths(u, state, taper)
    half = state.lvid_cm / 2
    far = 20.0
    # Chest wall: everything nearer than a line parallel to the RV's front.
    rv_front = -(half + state.ivs_cm + layout.rv_depth_cm)
    u_wide = np.array([-far, far])
    put(band(u_wide, np.array([-far, -far]), np.full(2, rv_front - RV_WALL_CM)), Label.CHEST_WALL)
    # RV free wall and cavity, then the pericardium behind the heart.
    put(band(u_wide, np.full(2, rv_front - RV_WALL_CM), np.full(2, rv_front)), Label.WALL)
    rv_u = np.linspace(-far, far, 2)
    put(band(rv_u, np.full(2, rv_front), np.zeros(2)), Label.BLOOD)
    put(band(u, np.zeros_like(u), posterior + PERICARDIUM_CM), Label.PERICARDIUM)
    # Septum (anterior half of the muscle) and posterior wall, then the cavity over them.
    # The septum stops 1 cm short of the annulus, where it thins into the aortic wall.
    short = u <= BASE_U_CM - 1.0
    put(band(u[short], -septum[short], np.zeros(short.sum())), Label.IVS)
    put(band(u, np.zeros_like(u), posterior), Label.LVPW)
    put(band(u, -cavity, cavity), Label.LV)
    # The septum thins into the anterior aortic wall (aorto-septal continuity).
    join = np.linspace(BASE_U_CM - 1.0, BASE_U_CM + 1.0, 12)
    thickness = np.interp(join, [BASE_U_CM - 1.0, BASE_U_CM + 1.0], [state.ivs_cm, AORTIC_WALL_CM])
    put(band(join, -half - thickness, np.full_like(join, -half)), Label.IVS)
    _draw_base(labels, sector, layout, state, half)


def _draw_base(
    labels: Labels, sector: Sector, layout: PlaxLayout, state: PlaxState, half: float
) -> None:
    """Aortic root, left atrium and mitral leaflets to the right of the annulus."""

    def put(uv: Points, label: Label) -> None:
        fill(labels, sector, layout.to_scan(uv), label)

    u = np.array([BASE_U_CM, 20.0])
    front = -half  # the aortic anterior wall continues the septum's LV side
    back = front + AORTA_CM
    wall = AORTIC_WALL_CM
    put(band(u, np.full(2, front - wall), np.full(2, back + wall)), Label.WALL)
    put(band(u, np.full(2, front), np.full(2, back)), Label.BLOOD)
    r = layout.la_radius_cm
    centre = (BASE_U_CM + r + 0.2, back + wall + r + 0.1)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    put(np.asarray(centre) + (r + 0.25) * ring, Label.PERICARDIUM)
    put(np.asarray(centre) + r * ring, Label.BLOOD)
    # Leaflets: hinged at the annulus; open they lie along the walls, closed they meet.
    t = state.valve_open
    anterior_root = np.array([BASE_U_CM, back])
    posterior_root = np.array([BASE_U_CM, half])
    closed_tip = np.array([BASE_U_CM - 0.6, 0.35 * half])
    anterior_tip = (1 - t) * closed_tip + t * np.array([0.8, -0.45 * half])
    posterior_tip = (1 - t) * closed_tip + t * np.array([1.0, 0.7 * half])
    for root, tip in ((anterior_root, anterior_tip), (posterior_root, posterior_tip)):
        polyline(labels, sector, layout.to_scan(np.stack([root, tip])), Label.VALVE, 0.12)


def keypoints_cm(layout: PlaxLayout, state: PlaxState) -> Points:
    """The four EchoNet-LVH points (pt0 LVPW outer → pt3 IVS RV side) in scan cm."""
    half = state.lvid_cm / 2
    v = np.array([half + state.lvpw_cm, half, -half, -half - state.ivs_cm])
    return layout.to_scan(np.stack([np.zeros(4), v], axis=1))
