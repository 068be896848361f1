"""ai.regions: the Sequence of Ultrasound Regions of real files, clamping, errors, conversions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.decode import load_clip
from ai.regions import (
    DATA_CW,
    DATA_PW,
    RegionError,
    UnitError,
    baseline_row,
    column_to_seconds,
    distance_cm,
    parse_regions,
    region_at,
    row_to_velocity,
    spectral_region,
    tissue_region,
    velocity_to_row,
)
from ai.sector import apply_mask, sector_mask


def sample(name: str) -> Path:
    """A file of pydicom's bundled examples or pydicom-data."""
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing: is pydicom-data installed?"
    return Path(path)


FILES_WITH_REGIONS = {
    "examples_ybr_color.dcm": 1,
    "examples_palette.dcm": 1,  # its second region starts below the last row: dropped
    "color3d_jpeg_baseline.dcm": 1,
    "OBXXXX1A.dcm": 2,
    "OBXXXX1A_rle_2frame.dcm": 2,
    "OBXXXX1A_expb.dcm": 2,
    "gdcm-US-ALOKA-16.dcm": 3,
    "gdcm-US-ALOKA-16_big.dcm": 3,
    "JPGLosslessP14SV1_1s_1f_8b.dcm": 1,
}


@pytest.mark.parametrize("name", sorted(FILES_WITH_REGIONS))
def test_regions_parse_and_lie_inside_the_image(name: str) -> None:
    ds = pydicom.dcmread(sample(name), stop_before_pixels=True)
    regions = parse_regions(ds, strict=True)
    assert len(regions) == FILES_WITH_REGIONS[name]
    for region in regions:
        assert 0 <= region.min_x0 <= region.max_x1 < ds.Columns
        assert 0 <= region.min_y0 <= region.max_y1 < ds.Rows
    # None of the real files holds a spectral Doppler strip.
    assert spectral_region(regions) is None


def test_max_y1_past_the_last_row_is_clamped() -> None:
    ds = pydicom.dcmread(sample("examples_palette.dcm"), stop_before_pixels=True)
    raw = ds.SequenceOfUltrasoundRegions[0]
    assert raw.RegionLocationMaxY1 >= ds.Rows
    (region,) = parse_regions(ds)
    assert region.max_y1 == ds.Rows - 1
    assert (region.min_x0, region.min_y0) == (raw.RegionLocationMinX0, raw.RegionLocationMinY0)
    assert region.reference_pixel_y0 == raw.ReferencePixelY0


def test_three_region_sixteen_bit_file() -> None:
    ds = pydicom.dcmread(sample("gdcm-US-ALOKA-16.dcm"), stop_before_pixels=True)
    regions = parse_regions(ds)
    assert [r.data_type for r in regions] == [1, 1, 13]  # two tissue images and a grey bar
    tissue = tissue_region(regions)
    assert tissue is not None and tissue.data_type == 1
    left, right, bar = regions
    assert region_at(regions, 100, 200) == left
    assert region_at(regions, 400, 200) == right
    assert region_at(regions, 40, 50) == bar  # the smallest region holding the pixel
    # 100 pixels across at 0.0382653 cm per pixel.
    assert distance_cm(left, (100, 200), (200, 200)) == pytest.approx(3.82653, rel=1e-5)
    assert distance_cm(left, (0, 0), (30, 40)) == pytest.approx(50 * 0.0382653, rel=1e-5)


def _item(**overrides: object) -> Dataset:
    item = Dataset()
    values: dict[str, object] = {
        "RegionSpatialFormat": 3,
        "RegionDataType": DATA_CW,
        "RegionFlags": 0,
        "RegionLocationMinX0": 10,
        "RegionLocationMinY0": 100,
        "RegionLocationMaxX1": 309,
        "RegionLocationMaxY1": 299,
        "PhysicalUnitsXDirection": 4,
        "PhysicalUnitsYDirection": 7,
        "PhysicalDeltaX": 0.004,
        "PhysicalDeltaY": -2.5,
        "ReferencePixelX0": 0,
        "ReferencePixelY0": 40,
    }
    values.update(overrides)
    for name, value in values.items():
        if value is not None:
            setattr(item, name, value)
    return item


def _dataset(*items: Dataset, rows: int = 300, columns: int = 320) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = rows, columns
    ds.SequenceOfUltrasoundRegions = list(items)
    return ds


def test_errors_name_the_attribute() -> None:
    with pytest.raises(RegionError, match=r"\[0\]: missing PhysicalDeltaY"):
        parse_regions(_dataset(_item(PhysicalDeltaY=None)), strict=True)
    with pytest.raises(RegionError, match="RegionLocationMaxX1 5 < RegionLocationMinX0 10"):
        parse_regions(_dataset(_item(RegionLocationMaxX1=5)), strict=True)
    # Not strict: the bad item is skipped and the good one kept.
    kept = parse_regions(_dataset(_item(RegionDataType=DATA_PW), _item(PhysicalDeltaX=None)))
    assert [r.data_type for r in kept] == [DATA_PW]


def test_velocity_and_time_conversions() -> None:
    (region,) = parse_regions(_dataset(_item()), strict=True)
    assert baseline_row(region) == 140  # MinY0 100 + ReferencePixelY0 40 (region-relative)
    assert row_to_velocity(region, 140) == 0.0
    assert row_to_velocity(region, 240) == pytest.approx(-250.0)  # below the baseline
    assert row_to_velocity(region, 120) == pytest.approx(50.0)
    assert velocity_to_row(region, -250.0) == pytest.approx(240.0)
    assert column_to_seconds(region, 260) == pytest.approx(1.0)
    with pytest.raises(UnitError, match="not 3/3"):
        distance_cm(region, (0, 0), (1, 1))
    shifted = parse_regions(_dataset(_item(ReferencePixelPhysicalValueY=10.0)))[0]
    assert row_to_velocity(shifted, 140) == pytest.approx(10.0)


def test_frequency_scale_and_missing_baseline_are_refused() -> None:
    frequency = parse_regions(_dataset(_item(RegionFlags=0b100, PhysicalUnitsYDirection=5)))[0]
    with pytest.raises(UnitError, match="frequency"):
        row_to_velocity(frequency, 150)
    no_baseline = parse_regions(_dataset(_item(ReferencePixelY0=None)))[0]
    with pytest.raises(UnitError, match="ReferencePixelY0"):
        row_to_velocity(no_baseline, 150)
    centimetres = UltrasoundRegion(1, 1, 0, 0, 0, 9, 9, 3, 3, 0.1, 0.1, 5, 0)
    with pytest.raises(UnitError, match="not 7"):
        row_to_velocity(centimetres, 3)


def test_region_outside_the_image_is_dropped() -> None:
    regions = parse_regions(
        _dataset(_item(), _item(RegionLocationMinY0=400, RegionLocationMaxY1=500))
    )
    assert len(regions) == 1
    assert spectral_region(regions) == regions[0]


# --- the sector mask (ai.sector) -------------------------------------------------------------


def _fan_clip(frames: int, seed: int = 0) -> tuple[Clip, npt.NDArray[np.bool_]]:
    """A fan of changing speckle, burned-in white text and a green ECG trace."""
    rng = np.random.default_rng(seed)
    rows, columns = 240, 320
    fan = np.zeros((rows, columns), np.uint8)
    cv2.ellipse(fan, (160, 20), (200, 200), 0, 50, 130, 1, -1)
    truth = fan.astype(bool)
    video = np.zeros((frames, rows, columns, 3), np.uint8)
    for k in range(frames):
        grey = (rng.gamma(1.5, 40.0, (rows, columns)).clip(0, 255) * truth).astype(np.uint8)
        frame = np.repeat(grey[..., None], 3, axis=2)
        cv2.putText(frame, "HR 72 PLAX", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255,) * 3, 1)
        cv2.putText(frame, "MI 1.2", (260, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230,) * 3, 1)
        xs = np.arange(columns)
        ys = (225 - 12 * np.exp(-((((xs - 40 - 8 * k) % 120 - 60) / 3.0) ** 2))).astype(int)
        frame[ys, xs] = (30, 220, 40)
        video[k] = frame
    return Clip(frames=ArrayFrames(video), rows=rows, columns=columns), truth


@pytest.mark.parametrize("frames", [1, 12])
def test_sector_mask_keeps_the_fan_and_drops_text_and_ecg(frames: int) -> None:
    clip, truth = _fan_clip(frames)
    mask = sector_mask(clip)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.93, iou
    first = clip.frames[0]
    text = (first.min(axis=2) > 200) & ~truth
    ecg = (first[..., 1] > 200) & (first[..., 0] < 100)
    assert text.sum() > 50 and not (mask & text).any()
    assert ecg.sum() > 100 and not (mask & ecg).any()
    masked = apply_mask(first, mask)
    assert masked[~mask].max() == 0 and (masked[mask] == first[mask]).all()


def test_sector_mask_stays_inside_the_tissue_region() -> None:
    clip, _ = _fan_clip(4)
    region = UltrasoundRegion(1, 1, 0, 0, 0, 319, 150, 3, 3, 0.05, 0.05)
    mask = sector_mask(Clip(clip.frames, clip.rows, clip.columns, regions=(region,)))
    assert mask.any() and not mask[151:].any()


def test_sector_mask_on_a_real_clip() -> None:
    """pydicom-data's 120-frame SonoSite clip: the fan, not the text band around it."""
    clip = load_clip(sample("color3d_jpeg_baseline.dcm"))
    mask = sector_mask(clip, max_frames=8)
    assert 0.15 < mask.mean() < 0.5
    assert not mask[:20, :100].any()  # the "PLA Gen THI" text at the top left
    assert not mask[440:].any()  # the button bar at the bottom
    assert mask[200, 320]  # the middle of the fan
