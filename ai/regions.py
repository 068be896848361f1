"""Sequence of Ultrasound Regions (PS3.3 C.8.5.5) → UltrasoundRegion, and pixel ↔ physical.

Values (PS3.3 C.8.5.5.1.1–.1.3, .1.15): spatial format 1 2D, 2 M-mode, 3 spectral, 4 waveform;
data type 1 tissue, 2 colour flow, 3 PW spectral, 4 CW spectral, 0x0A ECG trace; flags bit 2 set
= the Doppler scale is frequency, not velocity; units 3 cm, 4 s, 5 Hz, 7 cm/s.

Reference Pixel X0/Y0 are offsets from the region's top-left corner, not the image's, so the
Doppler baseline row is RegionLocationMinY0 + ReferencePixelY0 and the velocity at image row r is
ReferencePixelPhysicalValueY + (r − baseline) × PhysicalDeltaY.

Real files put bounds past the image (MaxY1 ≥ Rows, MaxX1 ≥ Columns: pydicom's
examples_palette.dcm, examples_ybr_color.dcm): the max bounds are clamped to the image; a region
lying wholly outside the image is dropped (logged), since it has no pixels to measure. Clamping
never moves Min X0/Y0, so reference pixel offsets stay valid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

from pydicom.dataset import Dataset

from ai.clip import UltrasoundRegion

logger = logging.getLogger(__name__)

SPATIAL_2D = 1
SPATIAL_MMODE = 2
SPATIAL_SPECTRAL = 3
SPATIAL_WAVEFORM = 4

DATA_TISSUE = 1
DATA_COLOR_FLOW = 2
DATA_PW = 3
DATA_CW = 4
DATA_ECG = 0x0A

UNITS_CM = 3
UNITS_SECONDS = 4
UNITS_HZ = 5
UNITS_CM_PER_S = 7

FLAG_FREQUENCY_SCALE = 1 << 2

_REQUIRED = (
    "RegionSpatialFormat",
    "RegionDataType",
    "RegionFlags",
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
    "PhysicalUnitsXDirection",
    "PhysicalUnitsYDirection",
    "PhysicalDeltaX",
    "PhysicalDeltaY",
)


class RegionError(ValueError):
    """A region item that cannot be used; the message names the attribute."""


class UnitError(ValueError):
    """A conversion asked of a region whose axis is in other units."""


def _optional_int(item: Dataset, name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value)


def _optional_float(item: Dataset, name: str) -> float | None:
    value = item.get(name)
    return None if value is None else float(value)


def parse_region(item: Dataset, index: int, rows: int, columns: int) -> UltrasoundRegion | None:
    """One region item, bounds clamped to a rows × columns image; None when wholly outside."""
    where = f"SequenceOfUltrasoundRegions[{index}]"
    for name in _REQUIRED:
        if item.get(name) is None:
            raise RegionError(f"{where}: missing {name}")
    min_x0, min_y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
    max_x1, max_y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
    if max_x1 < min_x0:
        raise RegionError(f"{where}: RegionLocationMaxX1 {max_x1} < RegionLocationMinX0 {min_x0}")
    if max_y1 < min_y0:
        raise RegionError(f"{where}: RegionLocationMaxY1 {max_y1} < RegionLocationMinY0 {min_y0}")
    for name in ("PhysicalDeltaX", "PhysicalDeltaY"):
        if not math.isfinite(float(item.get(name))):
            raise RegionError(f"{where}: {name} is not finite")
    if min_x0 >= columns or min_y0 >= rows:
        logger.info("%s lies outside the %dx%d image; dropped", where, columns, rows)
        return None
    if max_x1 >= columns or max_y1 >= rows:
        logger.debug("%s clamped to the %dx%d image", where, columns, rows)
    return UltrasoundRegion(
        spatial_format=int(item.RegionSpatialFormat),
        data_type=int(item.RegionDataType),
        flags=int(item.RegionFlags),
        min_x0=min_x0,
        min_y0=min_y0,
        max_x1=min(max_x1, columns - 1),
        max_y1=min(max_y1, rows - 1),
        physical_units_x=int(item.PhysicalUnitsXDirection),
        physical_units_y=int(item.PhysicalUnitsYDirection),
        physical_delta_x=float(item.PhysicalDeltaX),
        physical_delta_y=float(item.PhysicalDeltaY),
        reference_pixel_x0=_optional_int(item, "ReferencePixelX0"),
        reference_pixel_y0=_optional_int(item, "ReferencePixelY0"),
        reference_physical_value_x=_optional_float(item, "ReferencePixelPhysicalValueX"),
        reference_physical_value_y=_optional_float(item, "ReferencePixelPhysicalValueY"),
    )


def parse_regions(
    ds: Dataset, rows: int | None = None, columns: int | None = None, strict: bool = False
) -> tuple[UltrasoundRegion, ...]:
    """Every usable region of the dataset, in sequence order.

    strict=False (decoding) logs and skips an invalid item so the clip still decodes and the
    other regions still count; strict=True raises RegionError naming the attribute.
    """
    rows = int(ds.Rows) if rows is None else rows
    columns = int(ds.Columns) if columns is None else columns
    regions: list[UltrasoundRegion] = []
    for index, item in enumerate(ds.get("SequenceOfUltrasoundRegions", []) or []):
        try:
            region = parse_region(item, index, rows, columns)
        except RegionError as error:
            if strict:
                raise
            logger.warning("skipping invalid region: %s", error)
            continue
        if region is not None:
            regions.append(region)
    return tuple(regions)


# --- finding the regions a pipeline needs -------------------------------------------------


def _largest(regions: Iterable[UltrasoundRegion]) -> UltrasoundRegion | None:
    candidates = list(regions)
    if not candidates:
        return None
    return max(candidates, key=lambda r: r.width * r.height)


def is_spectral(region: UltrasoundRegion) -> bool:
    return region.data_type in (DATA_PW, DATA_CW)


def spectral_region(regions: Sequence[UltrasoundRegion]) -> UltrasoundRegion | None:
    """The PW/CW spectral Doppler region (data type 3/4), the largest if there are several."""
    return _largest(r for r in regions if is_spectral(r))


def mmode_region(regions: Sequence[UltrasoundRegion]) -> UltrasoundRegion | None:
    return _largest(r for r in regions if r.spatial_format == SPATIAL_MMODE)


def tissue_region(regions: Sequence[UltrasoundRegion]) -> UltrasoundRegion | None:
    """The 2D image region (spatial format 1, tissue or colour flow), the largest."""
    return _largest(
        r
        for r in regions
        if r.spatial_format == SPATIAL_2D and r.data_type in (DATA_TISSUE, DATA_COLOR_FLOW)
    )


def ecg_region(regions: Sequence[UltrasoundRegion]) -> UltrasoundRegion | None:
    return _largest(r for r in regions if r.data_type == DATA_ECG)


def contains(region: UltrasoundRegion, x: float, y: float) -> bool:
    return region.min_x0 <= x <= region.max_x1 and region.min_y0 <= y <= region.max_y1


def region_at(regions: Sequence[UltrasoundRegion], x: float, y: float) -> UltrasoundRegion | None:
    """The smallest region holding the pixel (a spectral strip inside a larger frame region)."""
    holding = [r for r in regions if contains(r, x, y)]
    return min(holding, key=lambda r: r.width * r.height) if holding else None


# --- conversions --------------------------------------------------------------------------


def is_frequency_scale(region: UltrasoundRegion) -> bool:
    return bool(region.flags & FLAG_FREQUENCY_SCALE)


def _require_velocity(region: UltrasoundRegion) -> None:
    if is_frequency_scale(region):
        raise UnitError("RegionFlags bit 2 set: the Doppler scale is frequency, not velocity")
    if region.physical_units_y != UNITS_CM_PER_S:
        raise UnitError(f"PhysicalUnitsYDirection is {region.physical_units_y}, not 7 (cm/s)")
    if region.physical_delta_y == 0:
        raise UnitError("PhysicalDeltaY is 0")


def baseline_row(region: UltrasoundRegion) -> int:
    """Absolute image row of zero velocity (RegionLocationMinY0 + ReferencePixelY0)."""
    if region.reference_pixel_y0 is None:
        raise UnitError("ReferencePixelY0 absent: the Doppler baseline is unknown")
    return region.min_y0 + region.reference_pixel_y0


def row_to_velocity(region: UltrasoundRegion, row: float) -> float:
    """Velocity in cm/s at an absolute image row, signed as the region calibrates it."""
    _require_velocity(region)
    offset = region.reference_physical_value_y or 0.0
    return offset + (row - baseline_row(region)) * region.physical_delta_y


def velocity_to_row(region: UltrasoundRegion, velocity_cm_s: float) -> float:
    _require_velocity(region)
    offset = region.reference_physical_value_y or 0.0
    return baseline_row(region) + (velocity_cm_s - offset) / region.physical_delta_y


def column_to_seconds(region: UltrasoundRegion, column: float) -> float:
    """Time in s at an absolute image column of a spectral or M-mode region (units X = 4)."""
    if region.physical_units_x != UNITS_SECONDS:
        raise UnitError(f"PhysicalUnitsXDirection is {region.physical_units_x}, not 4 (s)")
    origin = region.min_x0 + (region.reference_pixel_x0 or 0)
    offset = region.reference_physical_value_x or 0.0
    return offset + (column - origin) * region.physical_delta_x


def seconds_per_column(region: UltrasoundRegion) -> float:
    if region.physical_units_x != UNITS_SECONDS:
        raise UnitError(f"PhysicalUnitsXDirection is {region.physical_units_x}, not 4 (s)")
    return abs(region.physical_delta_x)


def distance_cm(region: UltrasoundRegion, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Length in cm between two (x, y) pixels of a 2D region (units X and Y = 3)."""
    if region.physical_units_x != UNITS_CM or region.physical_units_y != UNITS_CM:
        raise UnitError(
            f"PhysicalUnitsX/YDirection are {region.physical_units_x}/"
            f"{region.physical_units_y}, not 3/3 (cm)"
        )
    dx = (b[0] - a[0]) * region.physical_delta_x
    dy = (b[1] - a[1]) * region.physical_delta_y
    return math.hypot(dx, dy)
