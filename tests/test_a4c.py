"""A4C pipeline: LV area curve, ED/ES, EF over clip starts and beats, optional classifiers.

Small stand-in networks with a known response check the orchestration (which frames, which
clips, how they are averaged, areas through the calibration); seeded random weights in the
published formats run the real architectures on a phantom clip for shapes and determinism.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from torch import nn

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.decode import load_clip
from ai.findings import PipelineStatus
from ai.models import ModelStore
from ai.models.loader import LoadedModel
from ai.phantom import generate_study
from ai.pipelines import pipelines_for
from ai.pipelines.a4c import (
    EF_MODEL,
    SEGMENTATION_MODEL,
    A4cOptions,
    analyse,
    area_phases,
    beat_starts,
    clip_starts,
    clip_tensor,
    order_statistic_spread,
    run_a4c,
    run_a4c_amyloid,
    run_a4c_hcm,
)
from tests.test_models import array_clip, random_state, save_checkpoint, small_spec, store_with

torch.set_num_threads(2)

DELTA = 0.05  # cm per pixel
REGION = UltrasoundRegion(1, 1, 0, 0, 0, 159, 119, 3, 3, DELTA, DELTA)


def disc_clip(frames: int = 100, period: int = 30) -> tuple[Clip, np.ndarray]:
    """A bright disc (the "LV") whose radius peaks every `period` frames, and its pixel areas.

    Row 0 is black, so the reference window applies: 120×160 → columns 20..139 (bias 20), a
    border of 12 → x 32..127, y 12..107; the disc (centre 80, 70, radius ≤ 32) stays inside it
    and inside the corner mask.
    """
    radius = 26 + 6 * np.cos(2 * np.pi * np.arange(frames) / period)
    ys, xs = np.mgrid[0:120, 0:160]
    video = np.zeros((frames, 120, 160, 3), np.uint8)
    for index, r in enumerate(radius):
        video[index][(xs - 80) ** 2 + (ys - 70) ** 2 <= r**2] = 255
    areas = (video[..., 0] > 0).sum(axis=(1, 2)).astype(float)
    return array_clip(video, (REGION,)), areas


class BrightIsLV(nn.Module):
    """LV where the pixel is brighter than mid-grey (undoing the model's normalisation)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.level = (127.5 - mean) / std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": x.mean(dim=1, keepdim=True) - self.level}


class FrameBrightness(nn.Module):
    """A video "EF model" answering with the mean of one frame of its clip (the first: 0)."""

    def __init__(self, frame: int = 0) -> None:
        super().__init__()
        self.frame = frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.frame].mean(dim=(1, 2, 3)).unsqueeze(1)


def stand_in(name: str, module: nn.Module, **changes: object) -> LoadedModel:
    return LoadedModel(small_spec(name, **changes), module.eval(), "f" * 64, torch.device("cpu"))


def test_area_phases_on_a_known_curve() -> None:
    area = 1000 + 200 * np.cos(2 * np.pi * np.arange(100) / 30)
    assert area_phases(area, 20) == ([30, 60, 90], [15, 45, 75])


def test_es_threshold_is_the_reference_order_statistic_not_a_quantile() -> None:
    """60 frames: a shallow systole at 15 (prominence 350) and a deep one at 41 (1000).

    Reference: sorted sizes at index round(60 ** 0.05) = 1 (600) and round(60 ** 0.95) = 49
    (1000), prominence ½ × 400 = 200: both kept. np.quantile's 5–95 % (647.5, 1400) would ask
    for 376.25 and keep only 41.
    """
    knots_x = [0, 8, 15, 22, 26, 27, 31, 32, 38, 41, 44, 52, 53, 57, 58, 59]
    knots_y = [1000, 1000, 650, 1000, 1000, 1400, 1400, 1000, 1000, 400, 1000, 1000, 1400]
    knots_y += [1400, 1000, 1000]
    size = np.round(np.interp(np.arange(60), knots_x, knots_y))
    ordered = np.sort(size)
    assert (round(60**0.05), round(60**0.95)) == (1, 49)
    assert (ordered[1], ordered[49]) == (600.0, 1000.0)
    assert order_statistic_spread(size) == 400.0
    assert area_phases(size, 20)[1] == [15, 41]
    low, high = np.quantile(size, [0.05, 0.95])
    by_quantile = scipy.signal.find_peaks(-size, distance=20, prominence=(high - low) / 2)[0]
    assert by_quantile.tolist() == [41]
    # Up to 5 sizes the reference's upper index is past the end (it raises); here the last
    # size stands in: 4 sizes → index round(4 ** 0.05) = 1 (2.0) and the last (5.0).
    assert order_statistic_spread(np.array([5.0, 1.0, 3.0, 2.0])) == 3.0


def test_clip_starts_and_zero_padding() -> None:
    assert clip_starts(10, 4, 2) == [0, 1, 2, 3]
    assert clip_starts(10, 4, 2, stride=2) == [0, 2]
    # Shorter than 4·2 frames: padded to 8, starts 0 .. 8 − 6 − 1 (the reference).
    assert clip_starts(5, 4, 2) == clip_starts(7, 4, 2) == clip_starts(8, 4, 2) == [0, 1]
    video = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 3, 2, 2)
    clip = clip_tensor(video, 0, 4, 2)
    assert clip.shape == (3, 4, 2, 2)
    assert clip[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 0.0]  # frame 6 does not exist: zeros


def test_segmentation_areas_phases_and_beat_by_beat_ef() -> None:
    clip, areas = disc_clip()
    spec = small_spec(SEGMENTATION_MODEL)
    seg = stand_in(SEGMENTATION_MODEL, BrightIsLV(spec.mean[0], spec.std[0]))
    ef = stand_in(EF_MODEL, FrameBrightness(), frames=8, period=2)
    result = analyse(clip, seg, ef, A4cOptions(per_start_series=True), batch_size=16)
    assert result.status is PipelineStatus.OK
    assert result.series["ED_frames"] == (30.0, 60.0, 90.0)
    assert result.series["ES_frames"] == (15.0, 45.0, 75.0)
    # Back through the 112×112 resize and the 10 % border trim to source pixels, then cm².
    np.testing.assert_allclose(result.series["LV_area_cm2"], areas * DELTA**2, rtol=0.03)
    (lvef,) = result.findings
    per_start = result.series["LVEF_per_start"]
    assert len(per_start) == 100 - 15 + 1  # every start of an 8-frame clip at period 2
    # A beat's clip starts half a clip's span (8·2 / 2 = 8 frames) before its end-systole.
    assert result.series["LVEF_beat_start_frames"] == (7.0, 37.0, 67.0)
    assert lvef.frames == (7, 37, 67) and "averaged_over_beats" in lvef.flags
    beats = [per_start[7], per_start[37], per_start[67]]
    assert result.series["LVEF_per_beat"] == pytest.approx(beats)
    assert lvef.value == pytest.approx(np.mean(beats))
    assert lvef.spread == pytest.approx((min(beats), max(beats)))
    assert lvef.unit == "%" and lvef.provenance.name == EF_MODEL
    assert not {"short_clip_padded", "window_from_tissue_region"} & set(lvef.flags)
    # By default only the beats' clips run: the same finding, without the every-start curve.
    quick = analyse(clip, seg, ef, A4cOptions(), batch_size=16)
    assert quick.findings == result.findings
    assert quick.series["LVEF_per_start"] == () and quick.series["LVEF_per_beat"] == tuple(beats)


def test_beats_start_half_a_clip_before_each_end_systole() -> None:
    """The reference's R script: clip start = ES − 32 for 32 frames at period 2, 0 when that is
    negative, dropped when it is not a clip start (≥ f − 62); a start reached twice counts
    twice in the mean."""
    assert beat_starts([15, 45, 75, 110], 120, 32, 2) == [0, 13, 43]
    assert beat_starts([5, 28], 100, 32, 2) == [0, 0]
    assert beat_starts([33], 50, 32, 2) == [1]  # padded to 64: starts 0 and 1
    assert beat_starts([34], 50, 32, 2) == []


def test_without_beats_every_clip_start_is_averaged() -> None:
    clip, _ = disc_clip(frames=40)
    ef = stand_in(EF_MODEL, FrameBrightness(), frames=8, period=2)
    result = analyse(clip, None, ef, A4cOptions(), batch_size=8)
    (lvef,) = result.findings
    assert "averaged_over_clip_starts" in lvef.flags and lvef.spread is None
    assert len(result.series["LVEF_per_start"]) == 40 - 14
    assert lvef.value == pytest.approx(np.mean(result.series["LVEF_per_start"]))
    assert lvef.frames == (0, 39) and "short_clip_padded" not in lvef.flags


@pytest.mark.parametrize(
    ("frames", "starts", "padded"),
    [(40, 2, True), (62, 2, True), (63, 2, True), (64, 2, False), (65, 3, False)],
)
def test_short_clips_are_padded_to_64_frames_as_the_reference(
    frames: int, starts: int, padded: bool
) -> None:
    """32 frames at period 2: a clip shorter than 64 frames is zero-padded to 64 and its clip
    starts are 0 and 1 (a 63-frame clip too, although one 63-frame span would fit); from 64 on
    the starts are 0 .. f − 63. The stand-in answers with the clip's last frame (index
    start + 62): the padding after normalisation is zeros."""
    clip, _ = disc_clip(frames=frames)
    ef = stand_in(EF_MODEL, FrameBrightness(frame=31), frames=32, period=2, input_height=16)
    ef = dataclasses.replace(ef, spec=dataclasses.replace(ef.spec, input_width=16))
    result = analyse(clip, None, ef, A4cOptions(), batch_size=8)
    (lvef,) = result.findings
    per_start = result.series["LVEF_per_start"]
    assert len(per_start) == starts
    assert ("short_clip_padded" in lvef.flags) is padded
    for start, value in enumerate(per_start):
        assert (value == 0.0) == (start + 62 >= frames), (start, value)
    assert lvef.value == pytest.approx(np.mean(per_start))


def test_missing_models_are_reported_with_their_commands(tmp_path: Path) -> None:
    clip, _ = disc_clip(frames=4)
    for models in (ModelStore(tmp_path), None):
        result = run_a4c(clip, models)
        assert result.status is PipelineStatus.MODEL_NOT_INSTALLED
        assert f"--name {SEGMENTATION_MODEL}" in result.message
        assert f"--name {EF_MODEL}" in result.message
        assert not result.findings and not result.series
        for run in (run_a4c_amyloid, run_a4c_hcm):
            optional = run(clip, models)
            assert optional.status is PipelineStatus.MODEL_NOT_INSTALLED
            assert "echo-node models import PATH --name echonet-lvh-" in optional.message
    assert {run_a4c, run_a4c_amyloid, run_a4c_hcm} <= set(pipelines_for("a4c"))


@pytest.mark.model
def test_amyloid_needs_the_first_frames_and_gives_a_probability(tmp_path: Path) -> None:
    spec = small_spec("echonet-lvh-amyloid", frames=8, input_height=32, input_width=32)
    save_checkpoint(tmp_path / spec.file, random_state(spec, seed=2), "model.")
    store = store_with(tmp_path, spec)
    short = run_a4c_amyloid(disc_clip(frames=6)[0], store)
    assert short.status is PipelineStatus.NOT_APPLICABLE and "too short" in short.message
    assert not short.findings
    result = run_a4c_amyloid(disc_clip(frames=12)[0], store)
    (finding,) = result.findings
    assert finding.name == "amyloid_probability" and 0.0 < finding.value < 1.0
    assert finding.frames == tuple(range(8))


@pytest.mark.model
def test_random_dynamic_weights_run_on_a_phantom_clip_deterministically(tmp_path: Path) -> None:
    seg = small_spec(SEGMENTATION_MODEL, input_height=32, input_width=32)
    ef = small_spec(EF_MODEL, frames=3, period=2, input_height=32, input_width=32)
    save_checkpoint(tmp_path / seg.file, random_state(seg, seed=1), "module.", wrapped=True)
    save_checkpoint(tmp_path / ef.file, random_state(ef, seed=2), "module.", wrapped=True)
    phantom = load_clip(generate_study(tmp_path / "study", seed=9, rows=120, columns=160)[1])
    frames = np.stack(list(phantom.iter_frames(range(6))))
    clip = dataclasses.replace(phantom, frames=ArrayFrames(frames))
    store = store_with(tmp_path, seg, ef)
    results = [run_a4c(clip, store, A4cOptions()) for _ in range(2)]
    assert results[0] == results[1]
    result = results[0]
    assert result.status is PipelineStatus.OK and not result.message
    assert len(result.series["LV_area_px"]) == 6
    assert len(result.series["LVEF_per_start"]) == 6 - 5 + 1
    (lvef,) = result.findings
    assert lvef.name == "LVEF" and np.isfinite(lvef.value)
    assert lvef.provenance.version == "v1.0.0" and len(lvef.provenance.sha256 or "") == 64
