"""EchoNet-Dynamic's frame conversion (the lab's ConvertDICOMToAVI notebook) on phantom and real
ultrasound files: the window, the channel, the resize and the corner mask, with the numbers
worked out by the notebook's rule in each docstring; the tissue-region window only where frame 0
has no black row, flagged.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from ai.clip import Clip, UltrasoundRegion
from ai.decode import load_clip
from ai.models.loader import LoadedModel
from ai.models.preprocess import Geometry
from ai.phantom import make_clip
from ai.pipelines.a4c import EF_MODEL, A4cOptions, analyse
from ai.pipelines.a4c_frames import (
    WINDOW_FROM_FRAME,
    WINDOW_FROM_REGION,
    Window,
    clip_window,
    corner_mask,
    dynamic_frames,
    first_black_row,
    reference_window,
)
from tests.conftest import us_file
from tests.test_a4c import FrameBrightness
from tests.test_models import array_clip, small_spec

SIZE = (112, 112)


def black_row(frame: np.ndarray) -> int:
    """The notebook's test, written out: first row whose mean over columns and channels < 1."""
    return int(np.flatnonzero(frame.astype(float).mean(axis=(1, 2)) < 1)[0])


def phantom_a4c(rows: int = 600, columns: int = 800) -> Clip:
    clip = make_clip("a4c", 4, rows=rows, columns=columns, cycles=1).to_clip()
    frames = np.stack(list(clip.iter_frames(range(4))))
    return dataclasses.replace(clip, frames=array_clip(frames).frames)


def test_phantom_window_is_the_notebooks() -> None:
    """600×800, frame 0 black from row 0: height 600, bias (800 − 600) // 2 = 100 columns each
    side, border 600 // 10 = 60: x 160..639, y 60..539."""
    clip = phantom_a4c()
    assert black_row(clip.frames[0]) == 0 == first_black_row(clip.frames[0])
    assert clip_window(clip, SIZE) == Window(Geometry(160, 60, 480, 480, 112, 112))


def test_a_header_band_is_cut_at_the_first_black_row() -> None:
    """30 header rows of text-grey: cut at row 30, height 570, bias 115, border 57:
    x 115 + 57 = 172, y 30 + 57 = 87, 570 − 114 = 456 pixels square."""
    clip = phantom_a4c()
    frames = np.stack(list(clip.iter_frames(range(len(clip)))))
    frames[:, :30] = 90
    frames[:, 30:34] = 0
    headed = dataclasses.replace(clip, frames=array_clip(frames).frames)
    assert black_row(frames[0]) == 30
    assert clip_window(headed, SIZE) == Window(Geometry(172, 87, 456, 456, 112, 112))


def test_odd_differences_and_tall_frames_follow_the_notebooks_slicing() -> None:
    """433×640: bias 207 // 2 = 103 leaves 434 columns; border 43 on rows and columns of the
    433-high frame: x 146, 347 square (one pixel right of centre, as the notebook). 641×480
    (taller): bias 80 rows, height 481, border 48: y 128, x 48, 385 square."""
    assert reference_window(433, 640, 0, SIZE) == Geometry(146, 43, 347, 347, 112, 112)
    assert reference_window(641, 480, 0, SIZE) == Geometry(48, 128, 385, 385, 112, 112)
    # Only the last row black: the notebook would resize a 1×1 sliver; the clip falls back.
    assert reference_window(100, 100, 99, SIZE) == Geometry(49, 99, 1, 1, 112, 112)
    frames = np.full((1, 100, 100, 3), 80, np.uint8)
    frames[0, 99] = 0
    assert clip_window(array_clip(frames), SIZE).flags == (WINDOW_FROM_FRAME,)
    # A black row in the top half (49): the notebook's rule holds. Height 51, bias 49 // 2 =
    # 24 columns, border 5: x 29, y 54, 51 − 10 = 41 square.
    frames[0, 49] = 0
    assert clip_window(array_clip(frames), SIZE) == Window(Geometry(29, 54, 41, 41, 112, 112))


@pytest.mark.parametrize(
    ("name", "top", "window"),
    [
        # 480×640, black from row 0: bias 80, border 48.
        ("color3d_jpeg_baseline.dcm", 0, (128, 48, 384)),
        # 600×800 with a 60-row header: height 540, bias 130, border 54.
        ("OBXXXX1A.dcm", 60, (184, 114, 432)),
        # 350×800 with a 60-row header: height 290, bias 255, border 29.
        ("examples_palette.dcm", 60, (284, 89, 232)),
    ],
)
def test_real_files_get_the_notebooks_window(
    name: str, top: int, window: tuple[int, int, int]
) -> None:
    clip = load_clip(us_file(name))
    frame = clip.frames[0]
    assert black_row(frame) == top
    x0, y0, side = window
    assert clip_window(clip, SIZE) == Window(Geometry(x0, y0, side, side, 112, 112))


def test_real_file_pixels_are_channel_zero_cubic_and_masked() -> None:
    """color3d_jpeg_baseline frame 0: red channel of rows 48..431, columns 128..511, INTER_CUBIC
    to 112×112, zero where x + y ≤ 67 or x − y ≥ 67, the same value in all three channels."""
    clip = load_clip(us_file("color3d_jpeg_baseline.dcm"))
    frame = clip.frames[0]
    out = dynamic_frames(frame[None], clip_window(clip, SIZE).geometry)[0]
    small = cv2.resize(frame[48:432, 128:512, 0].copy(), (112, 112), interpolation=cv2.INTER_CUBIC)
    y, x = np.mgrid[0:112, 0:112]
    keep = (x + y > 67) & (x - y < 67)
    np.testing.assert_array_equal(out[..., 0], np.where(keep, small, 0))
    assert (out[..., 1] == out[..., 0]).all() and (out[..., 2] == out[..., 0]).all()
    assert small[~keep].any()  # the mask really removed something on this clip


def test_corner_mask_numbers() -> None:
    """d = 112: the threshold is 112 // 2 + 112 // 10 = 67, strict on both sides."""
    mask = corner_mask(112, 112)
    assert not mask[67, 0] and mask[68, 0]  # (x 0, y 67): x + y = 67 is masked
    assert not mask[0, 67] and not mask[1, 68] and mask[2, 68]  # x − y = 67 is masked
    assert mask[111, 111] and mask[111, 0] and not mask[0, 0]
    # Each triangle holds 1 + 2 + … + 68 pixels (x + y ≤ 67, and x − y ≥ 67).
    # Masked: x + y ≤ 67 holds 68·69/2 = 2346 pixels, x − y ≥ 67 holds 1 + … + 45 = 1035, and
    # (67, 0) is in both: the notebook's two triangles are not the same size.
    assert (~mask).sum() == 2346 + 1035 - 1


def test_channel_zero_is_red_not_luma() -> None:
    """A uniform (200, 50, 10) window: the notebook keeps channel 0, 200, where luma is 90."""
    frames = np.zeros((1, 120, 160, 3), np.uint8)
    frames[0, 1:] = (200, 50, 10)
    out = dynamic_frames(frames, reference_window(120, 160, 0, SIZE) or Geometry(0, 0, 1, 1, 1, 1))
    assert set(np.unique(out)) == {0, 200}
    np.testing.assert_array_equal(out[0, ..., 0] == 200, corner_mask(112, 112))


def scale_bar_clip() -> Clip:
    """The phantom with a bright 8-pixel scale bar down the left edge: every row's mean is
    8 · 255 / 800 ≥ 1, so no row is black and the notebook would raise."""
    clip = phantom_a4c()
    frames = np.stack(list(clip.iter_frames(range(len(clip)))))
    frames[:, :, :8] = 255
    return dataclasses.replace(clip, frames=array_clip(frames).frames)


def test_no_black_row_falls_back_to_the_tissue_region_flagged() -> None:
    clip = scale_bar_clip()
    assert first_black_row(clip.frames[0]) is None
    (region,) = clip.regions
    window = clip_window(clip, SIZE)
    assert window.flags == (WINDOW_FROM_REGION,)
    # The lab's crop_and_scale on the region: the wider side loses round(|w − h| / 2) at each
    # end (so an odd difference leaves it one pixel longer), then int(0.1 · side) per side.
    assert region.width > region.height
    pad = round((region.width - region.height) / 2)
    width, height = region.width - 2 * pad, region.height
    cut_x, cut_y = int(width * 0.1), int(height * 0.1)
    assert window.geometry == Geometry(
        region.min_x0 + pad + cut_x,
        region.min_y0 + cut_y,
        width - 2 * cut_x,
        height - 2 * cut_y,
        112,
        112,
    )


def test_no_black_row_and_no_region_uses_the_whole_frame_flagged() -> None:
    """color-pl.dcm (120×256 RGB, no regions, no black row): the centred 120 square at x 68,
    then int(120 · 0.1) = 12 off every side: x 80, y 12, 96 square."""
    clip = load_clip(us_file("color-pl.dcm"))
    assert first_black_row(clip.frames[0]) is None and not clip.regions
    assert clip_window(clip, SIZE) == Window(
        Geometry(80, 12, 96, 96, 112, 112), (WINDOW_FROM_FRAME,)
    )


def test_the_fallback_flag_reaches_the_lvef_finding() -> None:
    spec = small_spec(EF_MODEL, frames=2, period=1, input_height=16, input_width=16)
    ef = LoadedModel(spec, FrameBrightness().eval(), "f" * 64, torch.device("cpu"))
    (flagged,) = analyse(scale_bar_clip(), None, ef, A4cOptions(), 4).findings
    assert WINDOW_FROM_REGION in flagged.flags
    (plain,) = analyse(phantom_a4c(), None, ef, A4cOptions(), 4).findings
    assert not {WINDOW_FROM_REGION, WINDOW_FROM_FRAME} & set(plain.flags)


def test_lv_area_in_cm2_goes_back_through_the_reference_window() -> None:
    """A disc of known area seen through the notebook's window: its pixel count in the 112 grid
    times the window's scale² and the region's PhysicalDelta² is its area in cm²."""
    region = UltrasoundRegion(1, 1, 0, 0, 0, 799, 599, 3, 3, 0.04, 0.04)
    ys, xs = np.mgrid[0:600, 0:800]
    frames = np.zeros((1, 600, 800, 3), np.uint8)
    frames[0][(xs - 400) ** 2 + (ys - 330) ** 2 <= 150**2] = 255
    clip = array_clip(frames, (region,))
    g = clip_window(clip, SIZE).geometry
    out = dynamic_frames(frames, g)[0, ..., 0]
    area = (out > 127).sum() * g.scale_x * g.scale_y * 0.04**2
    assert area == pytest.approx(np.pi * 150**2 * 0.04**2, rel=0.02)
