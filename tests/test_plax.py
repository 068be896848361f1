"""PLAX pipeline: heat maps → points → cm through the calibration, phases, frame choice.

The post-processing is checked on heat maps with known peaks (drawn at the phantom's true
keypoints); the whole pipeline with a tiny colour-keyed network standing in for the LVH
model (so the expected lengths are known exactly), and with seeded random LVH-shaped weights
on a phantom clip for shapes, provenance and determinism.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ai.clip import UltrasoundRegion
from ai.decode import load_clip
from ai.findings import PipelineStatus
from ai.models import ModelStore
from ai.models.loader import LoadedModel, sha256_file
from ai.models.preprocess import Geometry, crop_window
from ai.phantom import generate_study
from ai.pipelines import pipelines_for
from ai.pipelines.plax import (
    MODEL,
    FramePoints,
    Measuring,
    PlaxOptions,
    _finding,
    analyse,
    cardiac_phases,
    heatmap_points,
    preprocess,
    run_plax,
    segment_angles,
    segment_lengths,
)
from tests.test_models import array_clip, random_state, save_checkpoint, small_spec, store_with

torch.set_num_threads(2)


def gaussian_maps(points: np.ndarray, height: int, width: int, sigma: float = 3.0) -> np.ndarray:
    """(N, C, 2) (x, y) → (N, C, H, W) heat maps peaking at 1 on each point."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    gx = np.exp(-((xs - points[..., 0, None, None].astype(np.float32)) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys - points[..., 1, None, None].astype(np.float32)) ** 2) / (2 * sigma**2))
    return gx * gy


def test_centroid_of_known_peaks_and_empty_channels() -> None:
    truth = np.array([[[10.0, 12.0], [30.0, 20.0], [40.25, 7.5], [5.0, 30.0]]])
    maps = gaussian_maps(truth, 40, 50)
    maps[0, 3] = 0.2  # nothing reaches the 0.3 threshold: no point, not a guess
    points = heatmap_points(maps, 0.3)
    np.testing.assert_allclose(points[0, :3], truth[0, :3], atol=0.05)
    assert np.isnan(points[0, 3]).all()


def test_phantom_keypoints_through_resize_and_calibration_give_the_true_lengths(
    tmp_path: Path,
) -> None:
    dicom = generate_study(tmp_path, seed=3, rows=150, columns=240)[0]
    truth = json.loads(dicom.with_suffix(".json").read_text())
    clip = load_clip(dicom)
    region = clip.regions[0]
    # 240×150 is wider than 4:3: the reference crop trims columns before the 640×480 resize.
    geometry = crop_window(clip.rows, clip.columns, 640, 480)
    assert geometry.x0 > 0 and geometry.width == 200
    source = np.array([frame["keypoints_px"] for frame in truth["frames"]])
    model_points = geometry.to_model(source)
    found = np.concatenate(
        [
            geometry.to_source(heatmap_points(gaussian_maps(chunk, 480, 640, sigma=4.0), 0.3))
            for chunk in np.array_split(model_points, len(model_points) // 8)
        ]
    )
    np.testing.assert_allclose(found, source, atol=0.05)
    lengths = segment_lengths(found, region.physical_delta_x, region.physical_delta_y)
    for column, name in enumerate(("LVPW", "LVID", "IVS")):
        expected = [frame[f"{name}_cm"] for frame in truth["frames"]]
        np.testing.assert_allclose(lengths[:, column], expected, rtol=0.005)
    ed, es = cardiac_phases(lengths[:, 1], 25)
    assert ed and es
    for frame in ed:
        assert min(abs(frame - t) for t in truth["ed_frames"]) <= 2
    for frame in es:
        assert min(abs(frame - t) for t in truth["es_frames"]) <= 2


class ColourKeyedNet(nn.Module):
    """Stands in for the LVH network: channel k lights up where point k's colour is.

    Input is the pipeline's tensor (BGR, /255), so a pipeline that fed RGB would swap the red
    and blue points and get other lengths.
    """

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, g, r = x[:, 0], x[:, 1], x[:, 2]
        high, low = 0.5, 0.3
        masks = torch.stack(
            [
                (r > high) & (g < low) & (b < low),
                (g > high) & (r < low) & (b < low),
                (b > high) & (r < low) & (g < low),
                (r > high) & (g > high) & (b > high),
            ],
            dim=1,
        )
        return {"out": masks.float() * 20.0 - 10.0}


COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))
DIRECTION = np.array([0.6, -0.8])  # posterior wall → septum, up and to the right
DELTA_X, DELTA_Y = 0.02, 0.015  # cm per pixel
CM_PER_PX = float(np.hypot(DIRECTION[0] * DELTA_X, DIRECTION[1] * DELTA_Y))


def keyed_clip(frames: int = 90, period: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Dots on a line: LVPW 20 px, IVS 22 px, LVID 100 ± 20 px peaking every `period` frames."""
    rows, columns, radius = 240, 400, 6
    lvid = 100 + 20 * np.cos(2 * np.pi * np.arange(frames) / period)
    ys, xs = np.mgrid[0:rows, 0:columns]
    video = np.zeros((frames, rows, columns, 3), np.uint8)
    base = np.array([150.0, 220.0])
    for index in range(frames):
        offsets = np.cumsum([0.0, 20.0, lvid[index], 22.0])
        for offset, colour in zip(offsets, COLOURS, strict=True):
            x, y = base + offset * DIRECTION
            video[index][(xs - x) ** 2 + (ys - y) ** 2 <= radius**2] = colour
    return video, lvid


def keyed_model() -> LoadedModel:
    spec = small_spec(MODEL, input_height=240, input_width=320)
    return LoadedModel(spec, ColourKeyedNet().eval(), "0" * 64, torch.device("cpu"))


REGION = UltrasoundRegion(1, 1, 0, 30, 10, 380, 235, 3, 3, DELTA_X, DELTA_Y)


@pytest.mark.parametrize(
    "options",
    [PlaxOptions(), PlaxOptions(scan_scale=1.0, scan_stride=1)],
    ids=["coarse-scan-then-full-size", "reference-every-frame"],
)
def test_pipeline_reports_the_known_lengths_at_ed_and_es(options: PlaxOptions) -> None:
    video, _ = keyed_clip()
    result = analyse(array_clip(video, (REGION,)), keyed_model(), options, batch_size=16)
    assert result.status is PipelineStatus.OK, result.message
    found = {finding.name: finding for finding in result.findings}
    expected = {"IVSd": 22.0, "LVIDd": 120.0, "LVPWd": 20.0, "LVIDs": 80.0}
    assert set(found) == set(expected)
    for name, pixels in expected.items():
        assert found[name].unit == "cm"
        assert found[name].value == pytest.approx(pixels * CM_PER_PX, rel=0.01), name
        assert "phase_from_extreme_frame" not in found[name].flags
    assert found["LVIDd"].frames == (28, 56)
    # np.convolve(mode="same") pads with zeros, so the smoothed curve dips at both ends: the
    # edge bumps are the first and last extrema the reference drops, and 14 is kept.
    assert found["LVIDs"].frames == (14, 42, 70)
    assert found["LVIDd"].cardiac_phase == "diastole" and found["LVIDs"].cardiac_phase == "systole"
    # Points are in source pixels: LVIDd's first endpoint is the green dot of frame 28.
    assert found["LVIDd"].points[0] == pytest.approx(
        tuple(np.array([150, 220]) + 20 * DIRECTION), abs=0.2
    )
    assert found["IVSd"].provenance.name == MODEL and found["IVSd"].provenance.sha256 == "0" * 64
    stride = options.scan_stride
    assert result.series["frame"] == tuple(float(f) for f in range(0, 90, stride))
    lvid_px = np.asarray(result.series["LVID_cm"]) / CM_PER_PX
    np.testing.assert_allclose(lvid_px, keyed_clip()[1][::stride], rtol=0.02)
    # The beats, for the clip's EchoNet-Measurements models (ai.pipelines.measurements_2d).
    assert result.series["ED_frames"] == (28.0, 56.0)
    assert result.series["ES_frames"] == (14.0, 42.0, 70.0)


def test_a_one_kind_curve_keeps_its_extremum_and_the_missing_phase_says_so() -> None:
    """Half a beat, LVID falling from frame 0 to 29, scanned on every second frame. The
    smoothing pads with zeros, so the smoothed curve rises over its first samples: one peak
    (sample 2, frame 4) and no trough. The reference drops the first and last extremum only
    when both kinds exist, so that peak is end-diastole; no trough, so LVIDs comes from the
    smallest LVID (frame 28), flagged."""
    video, lvid = keyed_clip(frames=30, period=60)
    result = analyse(array_clip(video, (REGION,)), keyed_model(), PlaxOptions(), 8)
    found = {finding.name: finding for finding in result.findings}
    assert found["LVIDd"].frames == (4,) and "phase_from_extreme_frame" not in found["LVIDd"].flags
    assert found["LVIDd"].value == pytest.approx(lvid[4] * CM_PER_PX, rel=0.01)
    assert found["LVIDs"].frames == (28,) and "phase_from_extreme_frame" in found["LVIDs"].flags
    assert found["LVIDs"].value == pytest.approx(lvid[28] * CM_PER_PX, rel=0.01)
    # A stand-in frame is no beat: none is offered to the clip's other models.
    assert "ED_frames" not in result.series and "ES_frames" not in result.series


def test_segment_angles_follow_the_lvh_sign_and_wrap() -> None:
    """Heading arctan2(dx, dy): down (0, 10) is 0°, right (10, 0) is 90°, so down-then-right
    turns +90° (arctan2(dy, dx) would say −90°). Up-left (−1, −10) is −174.29° and up-right
    (1, −10) +174.29°: the difference 348.58° wraps to −11.42°."""
    bend = np.array([[[0.0, 0.0], [0.0, 10.0], [10.0, 10.0], [10.0, 20.0]]])
    np.testing.assert_allclose(segment_angles(bend), [[90.0, -90.0]])
    up = np.array([[[0.0, 0.0], [-1.0, -10.0], [0.0, -20.0], [0.0, -30.0]]])
    turn = np.degrees(np.arctan2(1, -10) - np.arctan2(-1, -10)) - 360.0
    np.testing.assert_allclose(segment_angles(up), [[turn, np.degrees(-np.arctan2(1, -10)) + 180]])
    assert turn == pytest.approx(-11.4212, abs=1e-4)


def test_bad_angle_is_judged_in_the_model_grid() -> None:
    """A window resized to twice its width (scale_x 0.5) doubles every dx: a 21.8° bend in
    source pixels (arctan2(4, 10)) is 38.7° (arctan2(8, 10)) in the grid the reference measures
    in, beyond the 30° limit."""
    points = np.array([[[0.0, 0.0], [0.0, 10.0], [4.0, 20.0], [8.0, 30.0]]])
    region = UltrasoundRegion(1, 1, 0, 0, 0, 99, 99, 3, 3, 0.1, 0.1)
    provenance = keyed_model().provenance
    same = Measuring(region, Geometry(0, 0, 100, 100, 100, 100), provenance, 30.0)
    stretched = Measuring(region, Geometry(0, 0, 50, 100, 100, 100), provenance, 30.0)
    frame = FramePoints([0], points)
    assert np.degrees(np.arctan2(4, 10)) < 30 < np.degrees(np.arctan2(8, 10))
    plain = _finding("LVIDd", 1, frame, "diastole", (), same)
    bent = _finding("LVIDd", 1, frame, "diastole", (), stretched)
    assert plain is not None and bent is not None
    assert "bad_angle" not in plain.flags and "bad_angle" in bent.flags
    assert plain.value == bent.value  # lengths are measured in source pixels, calibrated


def test_a_434_by_636_frame_is_cropped_as_the_reference() -> None:
    """crop_and_scale(res=(640, 480)): 636/434 > 4/3, so int(round((636 − 4/3·434) / 2)) =
    round(28.67) = 29 columns go at each end, 578 stay (a centred round(434·4/3) = 579 from
    x 28 would be one pixel off); then cv2.resize to 640×480, INTER_LINEAR, BGR, /255."""
    frame = np.random.default_rng(1).integers(0, 256, (1, 434, 636, 3), dtype=np.uint8)
    tensor, geometry = preprocess(frame, keyed_model().spec, 640, 480)
    assert geometry == Geometry(29, 0, 578, 434, 640, 480)
    expected = cv2.resize(frame[0, :, 29:-29, ::-1].copy(), (640, 480)).astype(np.float32) / 255
    np.testing.assert_allclose(tensor[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_without_a_calibrated_region_no_length_is_reported() -> None:
    video, _ = keyed_clip(frames=10)
    result = analyse(array_clip(video), keyed_model(), PlaxOptions(), 8)
    assert result.status is PipelineStatus.NOT_APPLICABLE and not result.findings


def test_no_model_file_means_model_not_installed_with_the_command(tmp_path: Path) -> None:
    video, _ = keyed_clip(frames=4)
    for models in (ModelStore(tmp_path), None):
        result = run_plax(array_clip(video, (REGION,)), models)
        assert result.status is PipelineStatus.MODEL_NOT_INSTALLED
        assert f"echo-node models import PATH --name {MODEL}" in result.message
        assert not result.findings and not result.series
    assert run_plax in pipelines_for("plax")


@pytest.mark.model
def test_random_lvh_weights_run_on_a_phantom_clip_deterministically(tmp_path: Path) -> None:
    spec = small_spec(MODEL, input_height=48, input_width=64)
    save_checkpoint(tmp_path / spec.file, random_state(spec, seed=11), "model.")
    clip = load_clip(generate_study(tmp_path / "study", seed=5, rows=120, columns=160)[0])
    clip = dataclasses.replace(clip, frames=_first(clip, 8))
    results = [run_plax(clip, store_with(tmp_path, spec)) for _ in range(2)]
    assert results[0] == results[1]
    result = results[0]
    assert result.status in (PipelineStatus.OK, PipelineStatus.FAILED)
    assert len(result.series["LVID_cm"]) == 4  # every second frame of 8
    for finding in result.findings:
        assert finding.provenance.sha256 == sha256_file(tmp_path / spec.file)
        assert finding.provenance.device == "cpu"


def _first(clip: object, count: int) -> object:
    from ai.clip import ArrayFrames, Clip

    assert isinstance(clip, Clip)
    return ArrayFrames(np.stack(list(clip.iter_frames(range(count)))))


def test_an_installed_file_that_does_not_fit_fails_with_the_reason(tmp_path: Path) -> None:
    spec = small_spec(MODEL, input_height=48, input_width=64)
    three = dataclasses.replace(spec, output_channels=3)
    save_checkpoint(tmp_path / spec.file, random_state(three), "model.")
    video, _ = keyed_clip(frames=2)
    result = run_plax(array_clip(video, (REGION,)), store_with(tmp_path, spec))
    assert result.status is PipelineStatus.FAILED and not result.findings
    assert "is (3, 256, 1, 1) in the file, (4, 256, 1, 1)" in result.message
