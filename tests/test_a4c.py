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
    clip_starts,
    clip_tensor,
    run_a4c,
    run_a4c_amyloid,
    run_a4c_hcm,
)
from tests.test_models import array_clip, random_state, save_checkpoint, small_spec, store_with

torch.set_num_threads(2)

DELTA = 0.05  # cm per pixel
REGION = UltrasoundRegion(1, 1, 0, 0, 0, 159, 119, 3, 3, DELTA, DELTA)


def disc_clip(frames: int = 100, period: int = 30) -> tuple[Clip, np.ndarray]:
    """A bright disc (the "LV") whose radius peaks every `period` frames, and its pixel areas."""
    radius = 30 + 8 * np.cos(2 * np.pi * np.arange(frames) / period)
    ys, xs = np.mgrid[0:120, 0:160]
    video = np.zeros((frames, 120, 160, 3), np.uint8)
    for index, r in enumerate(radius):
        video[index][(xs - 80) ** 2 + (ys - 60) ** 2 <= r**2] = 255
    areas = (video[..., 0] > 0).sum(axis=(1, 2)).astype(float)
    return array_clip(video, (REGION,)), areas


class BrightIsLV(nn.Module):
    """LV where the pixel is brighter than mid-grey (undoing the model's normalisation)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.level = (127.5 - mean) / std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": x.mean(dim=1, keepdim=True) - self.level}


class FirstFrameBrightness(nn.Module):
    """A video "EF model" answering with the mean of its clip's first frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0].mean(dim=(1, 2, 3)).unsqueeze(1)


def stand_in(name: str, module: nn.Module, **changes: object) -> LoadedModel:
    return LoadedModel(small_spec(name, **changes), module.eval(), "f" * 64, torch.device("cpu"))


def test_area_phases_on_a_known_curve() -> None:
    area = 1000 + 200 * np.cos(2 * np.pi * np.arange(100) / 30)
    assert area_phases(area, 20) == ([30, 60, 90], [15, 45, 75])


def test_clip_starts_and_zero_padding() -> None:
    assert clip_starts(10, 4, 2) == [0, 1, 2, 3]
    assert clip_starts(10, 4, 2, stride=2) == [0, 2]
    assert clip_starts(5, 4, 2) == [0]
    video = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 3, 2, 2)
    clip = clip_tensor(video, 0, 4, 2)
    assert clip.shape == (3, 4, 2, 2)
    assert clip[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 0.0]  # frame 6 does not exist: zeros


def test_segmentation_areas_phases_and_beat_by_beat_ef() -> None:
    clip, areas = disc_clip()
    spec = small_spec(SEGMENTATION_MODEL)
    seg = stand_in(SEGMENTATION_MODEL, BrightIsLV(spec.mean[0], spec.std[0]))
    ef = stand_in(EF_MODEL, FirstFrameBrightness(), frames=8, period=2)
    result = analyse(clip, seg, ef, A4cOptions(), batch_size=16)
    assert result.status is PipelineStatus.OK
    assert result.series["ED_frames"] == (30.0, 60.0, 90.0)
    assert result.series["ES_frames"] == (15.0, 45.0, 75.0)
    # Back through the 112×112 resize and the 10 % border trim to source pixels, then cm².
    np.testing.assert_allclose(result.series["LV_area_cm2"], areas * DELTA**2, rtol=0.03)
    (lvef,) = result.findings
    per_start = result.series["LVEF_per_start"]
    assert len(per_start) == 100 - 15 + 1  # every start of an 8-frame clip at period 2
    # Beats anchored at the EDs whose clip fits (30, 60; 90 + 15 > 100): mean over beats.
    assert result.series["LVEF_beat_start_frames"] == (30.0, 60.0)
    assert lvef.frames == (30, 60) and "averaged_over_beats" in lvef.flags
    assert lvef.value == pytest.approx(per_start[30]) == pytest.approx(max(per_start), rel=1e-4)
    assert lvef.spread == pytest.approx((per_start[30], per_start[60]))
    assert lvef.unit == "%" and lvef.provenance.name == EF_MODEL


def test_one_beat_averages_every_clip_start_and_short_clips_are_padded() -> None:
    clip, _ = disc_clip(frames=40)
    ef = stand_in(EF_MODEL, FirstFrameBrightness(), frames=8, period=2)
    result = analyse(clip, None, ef, A4cOptions(), batch_size=8)
    (lvef,) = result.findings
    assert "averaged_over_clip_starts" in lvef.flags and lvef.spread is None
    assert lvef.value == pytest.approx(np.mean(result.series["LVEF_per_start"]))
    short = analyse(disc_clip(frames=10)[0], None, ef, A4cOptions(), batch_size=8)
    assert "short_clip_padded" in short.findings[0].flags
    assert short.series["LVEF_per_start"] and len(short.series["LVEF_per_start"]) == 1


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
