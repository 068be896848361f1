"""What each value the node can report is, in a reader's terms: its names, its unit and
precision in the SR and on screen, how beats are combined, and how its caliper is drawn.

Template-independent (no codes here: echo_node/results/codes.py maps these keys to TID 5200 and
TID 5300 concepts). The report model (report.py) reads it; the SR writers, the overlays and the
PDF print what the report model made from it, so a value reads the same everywhere.

Precision: the SR carries a value rounded to the precision a cart prints it with (0.01 cm for
dimensions, 1 cm/s for blood velocities, 0.1 cm/s for e', 1 % for LVEF, 0.01 for ratios), and
the display string is exactly that value in the unit a cart prints (TR Vmax 255 cm/s in the SR
reads "TR Vmax 2.55 m/s"): one rounding, so a reader comparing the SR, an overlay and the PDF
never finds two numbers for one value, and a derived value recalculated from the printed
inputs comes out as printed.

Beats (ASE conventions; Zoghbi 2017 and Nagueh 2016 for Doppler, Lang 2015 for chamber
dimensions): the peak velocity of a jet is the highest of the beats (TR, AV, MR Vmax); inflow
and tissue velocities are the mean of the beats (E, A, e', LVOT Vmax); EchoNet's 2D linear
measurements are the median of the end-diastolic (or end-systolic) frames of up to three beats,
and EchoNet-Dynamic's ejection fraction the mean of its per-beat (or per-window) predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from types import MappingProxyType

from ai.findings import Aggregation


class Geometry(StrEnum):
    """How a beat's caliper points are drawn."""

    LINE = "line"  # two points per frame: a distance (2D calipers)
    POINTS = "points"  # separate marks (a Doppler peak per beat)
    FRAMES = "frames"  # no points: the frames it was measured on (EF from a clip)


@dataclass(frozen=True)
class Presentation:
    """How a value is written (SR unit and resolution) and printed (reader unit and digits)."""

    label: str  # full clinical name, e.g. "Mitral Valve E-Wave Peak Velocity"
    short: str  # for overlays and tables, e.g. "E"
    unit: str  # UCUM unit of the SR value
    resolution: str  # the SR value is rounded to this, in `unit` (a decimal string)
    display_unit: str  # the unit a cart prints ("" for a ratio)
    display_factor: str  # SR unit -> display unit (a decimal string)
    display_decimals: int

    def sr_value(self, value: float) -> float:
        return float(_round(Decimal(repr(value)), Decimal(self.resolution)))

    def display_number(self, sr_value: float) -> str:
        shown = Decimal(repr(sr_value)) * Decimal(self.display_factor)
        return (
            f"{_round(shown, Decimal(1).scaleb(-self.display_decimals)):.{self.display_decimals}f}"
        )

    def display(self, sr_value: float) -> str:
        """e.g. "E 104 cm/s", "E/A 1.3", "TR Vmax 2.55 m/s"."""
        number = self.display_number(sr_value)
        return f"{self.short} {number} {self.display_unit}".rstrip()


@dataclass(frozen=True)
class Measured:
    """A value a pipeline measures (a Finding name)."""

    presentation: Presentation
    aggregation: Aggregation  # the convention for combining beats (ASE; EchoNet for 2D)
    geometry: Geometry
    speed: bool = False  # reported without sign: a velocity's direction is in its concept


@dataclass(frozen=True)
class Derived:
    """A value calculated from reported ones, with its formula in words."""

    presentation: Presentation
    inputs: tuple[str, ...]  # keys of the values it is calculated from
    formula: str  # ASCII (it is SR text in the default character set): "4 x (TR Vmax)^2"


def _round(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


_p = Presentation


def _dimension(label: str, short: str) -> Measured:
    return Measured(_p(label, short, "cm", "0.01", "cm", "1", 2), Aggregation.MEDIAN, Geometry.LINE)


def _velocity(label: str, short: str, aggregation: Aggregation, in_m_s: bool) -> Measured:
    """A blood velocity: in cm/s in the SR (1 cm/s); printed in m/s for jets, cm/s for inflow."""
    if in_m_s:
        shown = _p(label, short, "cm/s", "1", "m/s", "0.01", 2)
    else:
        shown = _p(label, short, "cm/s", "1", "cm/s", "1", 0)
    return Measured(shown, aggregation, Geometry.POINTS, speed=True)


MEASURED: Mapping[str, Measured] = MappingProxyType(
    {
        "IVSd": _dimension("Interventricular Septum Diastolic Thickness", "IVSd"),
        "LVIDd": _dimension("Left Ventricle Internal End Diastolic Dimension", "LVIDd"),
        "LVPWd": _dimension("Left Ventricle Posterior Wall Diastolic Thickness", "LVPWd"),
        "LVIDs": _dimension("Left Ventricle Internal Systolic Dimension", "LVIDs"),
        "AoRoot": _dimension("Aortic Root Diameter", "Ao root"),
        "AoAsc": _dimension("Ascending Aortic Diameter", "Asc Ao"),
        "LAd": _dimension("Left Atrium Antero-posterior Systolic Dimension", "LA"),
        "RVbase": _dimension("Right Ventricular Basal Dimension", "RV base"),
        "LVEF": Measured(
            _p("Left Ventricular Ejection Fraction", "LVEF", "%", "1", "%", "1", 0),
            Aggregation.MEAN,
            Geometry.FRAMES,
        ),
        "TR_Vmax": _velocity(
            "Tricuspid Regurgitation Peak Velocity", "TR Vmax", Aggregation.MAX, True
        ),
        "AV_Vmax": _velocity("Aortic Valve Peak Velocity", "AV Vmax", Aggregation.MAX, True),
        "MR_Vmax": _velocity(
            "Mitral Regurgitation Peak Velocity", "MR Vmax", Aggregation.MAX, True
        ),
        "LVOT_Vmax": _velocity(
            "Left Ventricular Outflow Tract Peak Velocity", "LVOT Vmax", Aggregation.MEAN, True
        ),
        "MV_E": _velocity("Mitral Valve E-Wave Peak Velocity", "E", Aggregation.MEAN, False),
        "MV_A": _velocity("Mitral Valve A-Wave Peak Velocity", "A", Aggregation.MEAN, False),
        "e_lat": Measured(
            _p("Lateral Mitral Annulus e' Velocity", "e' lat", "cm/s", "0.1", "cm/s", "1", 1),
            Aggregation.MEAN,
            Geometry.POINTS,
            speed=True,
        ),
        "e_med": Measured(
            _p("Septal Mitral Annulus e' Velocity", "e' sept", "cm/s", "0.1", "cm/s", "1", 1),
            Aggregation.MEAN,
            Geometry.POINTS,
            speed=True,
        ),
    }
)

# Calculated as a cart calculates them, from the values reported (rounded as reported), so a
# reader can redo the arithmetic from the report. E/A is one of them: the ratio of the reported
# E and A (of one clip and engine), never a separately averaged number that disagrees with them.
DERIVED: Mapping[str, Derived] = MappingProxyType(
    {
        "MV_E_A": Derived(
            _p("Mitral Valve E to A Ratio", "E/A", "{ratio}", "0.01", "", "1", 2),
            ("MV_E", "MV_A"),
            "E/A = E / A",
        ),
        "TR_PG": Derived(
            _p("Tricuspid Regurgitation Peak Gradient", "TR PG", "mm[Hg]", "1", "mmHg", "1", 0),
            ("TR_Vmax",),
            "PG = 4 x (TR Vmax in m/s)^2 (simplified Bernoulli)",
        ),
        "AV_PG": Derived(
            _p("Aortic Valve Peak Gradient", "AV PG", "mm[Hg]", "1", "mmHg", "1", 0),
            ("AV_Vmax",),
            "PG = 4 x (AV Vmax in m/s)^2 (simplified Bernoulli)",
        ),
        "LV_mass": Derived(
            _p("Left Ventricle Mass", "LV mass", "g", "1", "g", "1", 0),
            ("IVSd", "LVIDd", "LVPWd"),
            "LV mass = 0.8 x 1.04 x [(IVSd + LVIDd + LVPWd)^3 - LVIDd^3] + 0.6 g, dimensions "
            "in cm (ASE linear method, cube formula)",
        ),
        "RWT": Derived(
            _p("Relative Wall Thickness", "RWT", "{ratio}", "0.01", "", "1", 2),
            ("LVPWd", "LVIDd"),
            "RWT = 2 x LVPWd / LVIDd",
        ),
        "FS": Derived(
            _p("Left Ventricular Fractional Shortening", "FS", "%", "1", "%", "1", 0),
            ("LVIDd", "LVIDs"),
            "FS = (LVIDd - LVIDs) / LVIDd x 100 %",
        ),
    }
)

# Patient characteristics and heart rate, from the source images' headers.
HEIGHT = _p("Patient Height", "Height", "cm", "1", "cm", "1", 0)
WEIGHT = _p("Patient Weight", "Weight", "kg", "0.1", "kg", "1", 1)
BSA = _p("Body Surface Area", "BSA", "m2", "0.01", "m²", "1", 2)
BSA_FORMULA = "BSA = 0.007184 x weight^0.425 x height^0.725 (DuBois; kg, cm)"
HEART_RATE = _p("Heart Rate", "HR", "/min", "1", "bpm", "1", 0)

# Finding.unit -> factor to the SR unit; a finding in another unit is a fault in the pipeline.
_TO_SR_UNIT: Mapping[tuple[str, str], float] = MappingProxyType(
    {
        ("cm", "cm"): 1.0,
        ("mm", "cm"): 0.1,
        ("%", "%"): 1.0,
        ("cm/s", "cm/s"): 1.0,
        ("m/s", "cm/s"): 100.0,
        ("1", "{ratio}"): 1.0,
        ("{ratio}", "{ratio}"): 1.0,
    }
)


def in_sr_unit(name: str, value: float, unit: str, to: str) -> float:
    """`value` (in `unit`, as the finding gives it) in the SR unit `to`, unrounded."""
    factor = _TO_SR_UNIT.get((unit, to))
    if factor is None:
        raise ValueError(f"results: {name} is in {unit!r}, which cannot be written as {to!r}")
    return value * factor
