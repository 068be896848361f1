"""EchoNet-Measurements 2D pipeline: heat maps → points → cm, phases, model presence, the SR.

Post-processing is checked with a network that returns fixed heat maps peaking at known points
(through the real crop, resize, sigmoid, centroid and calibration); the whole pipeline with a
colour-keyed network standing in for every model, so the expected lengths and frames are known
exactly; published-format checkpoints with seeded random weights on a phantom clip for strict
loading, shapes, provenance and determinism.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ai.analyze import run_pipelines
from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.findings import ClipResult, PipelineResult, PipelineStatus, View, ViewDecision
from ai.models import ModelStore
from ai.models.architectures import build
from ai.models.loader import LoadedModel, sha256_file
from ai.models.preprocess import crop_window
from ai.models.signal import lowpass
from ai.phantom.study import make_clip
from ai.pipelines import pipelines_for
from ai.pipelines.measurements_2d import (
    A4C,
    PLAX,
    Measurements2DOptions,
    make_finding,
    run_measurements_2d_a4c,
    run_measurements_2d_plax,
    run_view,
)
from ai.pipelines.plax import FramePoints, measure_frames, run_plax
from echo_node.results import SourceClip, build_sr, codes
from echo_node.results.coding import CODING_5200
from tests.test_models import random_state, save_checkpoint, small_spec, store_with
from tests.test_results_data import NODE, dciodvfy, sibling, source_header

torch.set_num_threads(2)

DELTA_X, DELTA_Y = 0.03, 0.02  # cm per pixel, anisotropic


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-7)
    return np.log(p / (1 - p))


class FixedMaps(nn.Module):
    """Returns the same logits for every frame: sigmoid gives the given heat maps back."""

    def __init__(self, maps: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(_logit(maps).astype(np.float32))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.logits.expand(x.shape[0], -1, -1, -1)}


def gaussian_maps(points: np.ndarray, height: int, width: int, sigma: float = 4.0) -> np.ndarray:
    """(C, 2) (x, y) → (1, C, H, W) heat maps peaking at 1 on each point."""
    ys = np.arange(height, dtype=np.float64)[:, None]
    xs = np.arange(width, dtype=np.float64)[None, :]
    maps = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in points]
    return np.stack(maps)[None]


def stand_in(name: str, net: nn.Module, **changes: object) -> LoadedModel:
    return LoadedModel(small_spec(name, **changes), net.eval(), "0" * 64, torch.device("cpu"))


def test_known_peaks_give_the_known_points_and_length_through_crop_and_calibration() -> None:
    # 300×500 is wider than 3:4: columns are cropped (x0 = 50) before the 640×480 resize, and
    # the 2D region starts at (40, 20), so no coordinate system coincides with another.
    rows, columns = 300, 500
    region = UltrasoundRegion(1, 1, 0, 40, 20, 470, 295, 3, 3, DELTA_X, DELTA_Y)
    source = np.array([[140.3, 60.7], [201.9, 230.2]])  # caliper ends in source pixels
    geometry = crop_window(rows, columns, 640, 480)
    assert (geometry.x0, geometry.width) == (50, 400)
    maps = gaussian_maps(geometry.to_model(source), 480, 640)
    model = stand_in(PLAX.phase_model, FixedMaps(maps))
    clip = Clip(ArrayFrames(np.zeros((3, rows, columns, 3), np.uint8)), rows, columns, (region,))
    measured = measure_frames(clip, model, [0, 2], 1.0, batch_size=2, threshold=0.0)
    np.testing.assert_allclose(measured.points, np.stack([source, source]), atol=0.02)
    target = PLAX.targets[1]  # LVIDd
    finding = make_finding(target, measured, clip, model, (), extreme_only=False)
    assert finding is not None
    dx, dy = source[1] - source[0]
    assert finding.value == pytest.approx(np.hypot(dx * DELTA_X, dy * DELTA_Y), rel=1e-4)
    assert finding.name == "LVIDd" and finding.unit == "cm" and finding.cardiac_phase == "diastole"
    assert finding.frames == (0, 2) and len(finding.points) == 4
    assert finding.points[1] == pytest.approx(tuple(source[1]), abs=0.02)
    assert finding.flags == ()
    # Whole-map centroid, as the reference: a weak second blob pulls the point, an argmax
    # would not move.
    doubled = maps.copy()
    doubled[0, 0] += 0.25 * gaussian_maps(geometry.to_model(source[1:]), 480, 640)[0, 0]
    shifted = measure_frames(
        clip, stand_in(PLAX.phase_model, FixedMaps(np.clip(doubled, 0, 1))), [0], 1.0, 1, 0.0
    )
    assert shifted.points[0, 0, 0] > source[0, 0] + 5


def test_lowpass_keeps_heart_rates_up_to_140_bpm_and_removes_faster_ripple() -> None:
    fps, frames = 50.0, 100  # 2 s
    t = np.arange(frames) / fps
    beat = 3.0 + np.cos(2 * np.pi * 1.5 * t)  # 90 bpm
    ripple = 0.4 * np.cos(2 * np.pi * 10.0 * t)  # 600 "bpm": speckle and jitter
    np.testing.assert_allclose(lowpass(beat + ripple, fps), beat, atol=1e-9)
    fast = np.cos(2 * np.pi * 2.5 * t)  # 150 bpm: above the cutoff, but within its bin margin
    assert np.abs(lowpass(fast, fps)).max() > 0.99


def test_a_caliper_end_outside_the_region_or_the_sector_is_flagged() -> None:
    region = UltrasoundRegion(1, 1, 0, 10, 10, 99, 99, 3, 3, DELTA_X, DELTA_Y)
    clip = Clip(ArrayFrames(np.zeros((1, 120, 160, 3), np.uint8)), 120, 160, (region,))
    model = stand_in(PLAX.phase_model, KeyedNet())
    sector = np.zeros((120, 160), bool)
    sector[20:90, 20:90] = True
    target = PLAX.targets[0]
    inside = FramePoints([0], np.array([[[30.0, 30.0], [60.0, 80.0]]]))
    found = make_finding(target, inside, clip, model, (), False, sector)
    assert found is not None and found.flags == ()
    # Median of the points inside the only region: it calibrates, the stray end is flagged.
    stray = FramePoints([0], np.array([[[30.0, 30.0], [60.0, 105.0]]]))
    found = make_finding(target, stray, clip, model, (), False, sector)
    assert found is not None
    assert found.flags == ("points_outside_region", "points_outside_sector")
    assert found.value == pytest.approx(np.hypot(30 * DELTA_X, 75 * DELTA_Y))


class KeyedNet(nn.Module):
    """Channel 0 lights up on red pixels, channel 1 on green ones (RGB input /255)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        masks = torch.stack(
            [(r > 0.6) & (g < 0.3) & (b < 0.3), (g > 0.6) & (r < 0.3) & (b < 0.3)], dim=1
        )
        return {"out": masks.float() * 40.0 - 20.0}


DIRECTION = np.array([0.6, 0.8])
CM_PER_PX = float(np.hypot(DIRECTION[0] * DELTA_X, DIRECTION[1] * DELTA_Y))
KEYED_REGION = UltrasoundRegion(1, 1, 0, 20, 10, 390, 230, 3, 3, DELTA_X, DELTA_Y)


def keyed_clip(frames: int = 90, period: int = 28, seed: int = 0) -> tuple[Clip, np.ndarray]:
    """A red and a green dot 100 ± 20 px apart (largest every `period` frames) on a grey fan
    of changing speckle, 240×400 (not 3:4)."""
    rows, columns, radius = 240, 400, 6
    rng = np.random.default_rng(seed)
    distance = 100 + 20 * np.cos(2 * np.pi * np.arange(frames) / period)
    ys, xs = np.mgrid[0:rows, 0:columns]
    fan = (np.abs(xs - 200) < (ys - 10) * 0.9) & (ys < 230) & (ys > 10)
    video = np.zeros((frames, rows, columns, 3), np.uint8)
    start = np.array([190.0, 50.0])
    for index in range(frames):
        video[index][fan] = rng.integers(30, 90, (int(fan.sum()), 1), dtype=np.uint8)
        for offset, colour in ((0.0, (255, 0, 0)), (distance[index], (0, 255, 0))):
            x, y = start + offset * DIRECTION
            video[index][(xs - x) ** 2 + (ys - y) ** 2 <= radius**2] = colour
    clip = Clip(ArrayFrames(video), rows, columns, (KEYED_REGION,), frame_time_ms=20.0)
    return clip, distance


def keyed_store(tmp_path: Path, names: tuple[str, ...]) -> ModelStore:
    store = ModelStore(tmp_path)
    for name in names:
        store.add(stand_in(name, KeyedNet()))
    return store


@pytest.mark.parametrize(
    "options",
    [Measurements2DOptions(), Measurements2DOptions(scan_scale=1.0, scan_stride=1)],
    ids=["half-size-scan-then-full-size", "reference-every-frame"],
)
def test_every_plax_model_reports_its_phase_value_and_lists_nothing_missing(
    tmp_path: Path, options: Measurements2DOptions
) -> None:
    clip, distance = keyed_clip()
    result = run_view(clip, keyed_store(tmp_path, PLAX.models), PLAX, options)
    assert result.status is PipelineStatus.OK, result.message
    assert result.pipeline == "measurements_2d_plax" and result.message == ""
    found = {f.name: f for f in result.findings}
    assert set(found) == {"IVSd", "LVIDd", "LVIDs", "LVPWd", "AoRoot", "AoAsc", "LAd"}
    longest, shortest = 120 * CM_PER_PX, 80 * CM_PER_PX
    for name, finding in found.items():
        systolic = name in ("LVIDs", "LAd")
        assert finding.value == pytest.approx(shortest if systolic else longest, rel=0.01), name
        assert finding.cardiac_phase == ("systole" if systolic else "diastole")
        assert finding.unit == "cm" and finding.provenance.name.startswith("echonet-measurements")
        # Source not 3:4: cropped, and said so; nothing else is wrong with this clip.
        assert finding.flags == ("source_not_3_4_cropped",), name
    # Interior extrema of the distance: troughs 14, 42, 70 and peaks 28, 56, 84; the first
    # (14) and the last (84) are dropped, as the reference does.
    assert found["LVIDd"].frames == (28, 56)
    assert found["LAd"].frames == found["LVIDs"].frames == (42, 70)
    assert found["LVIDd"].points[0] == pytest.approx((190.0, 50.0), abs=0.3)
    end = np.array([190.0, 50.0]) + distance[28] * DIRECTION
    assert found["LVIDd"].points[1] == pytest.approx(tuple(end), abs=0.3)
    assert found["IVSd"].provenance.name == "echonet-measurements-ivs"
    stride = options.scan_stride
    assert result.series["frame"] == tuple(float(f) for f in range(0, 90, stride))
    np.testing.assert_allclose(
        np.asarray(result.series["LVID_cm"]) / CM_PER_PX, distance[::stride], rtol=0.01
    )


def test_without_the_phase_model_the_extreme_frame_is_used_and_flagged(tmp_path: Path) -> None:
    clip, distance = keyed_clip(frames=60)
    result = run_view(clip, keyed_store(tmp_path, (PLAX.targets[0].model,)), PLAX)
    assert result.status is PipelineStatus.OK
    (ivs,) = result.findings
    options = Measurements2DOptions()
    sampled = np.round(np.linspace(0, 59, options.fallback_frames)).astype(int)
    assert ivs.frames == (int(sampled[np.argmin(distance[sampled])]),)
    assert ivs.value == pytest.approx(distance[sampled].min() * CM_PER_PX, rel=0.01)
    assert "no_beats_found" in ivs.flags
    # The missing ones are named with their install commands, in one message.
    for target in PLAX.targets[1:]:
        assert f"echo-node models import PATH --name {target.model}" in result.message


def test_rv_base_runs_for_a4c_on_its_own_curve(tmp_path: Path) -> None:
    clip, _ = keyed_clip()
    result = run_measurements_2d_a4c(clip, keyed_store(tmp_path, A4C.models))
    assert result.pipeline == "measurements_2d_a4c" and result.status is PipelineStatus.OK
    (rv,) = result.findings
    assert rv.name == "RVbase" and rv.frames == (28, 56)
    assert rv.value == pytest.approx(120 * CM_PER_PX, rel=0.01)
    assert "RVbase_cm" in result.series


class CountingKeyed(KeyedNet):
    """KeyedNet that counts the frames it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.frames += x.shape[0]
        return super().forward(x)


def _phases(pipeline: str, ed: tuple[int, ...], es: tuple[int, ...]) -> PipelineResult:
    series = {"ED_frames": tuple(map(float, ed)), "ES_frames": tuple(map(float, es))}
    return PipelineResult(pipeline, PipelineStatus.OK, (), "", series)


def test_the_beats_the_views_own_pipeline_found_are_measured_without_a_second_scan(
    tmp_path: Path,
) -> None:
    clip, distance = keyed_clip()
    store = keyed_store(tmp_path, PLAX.models)
    phase_net = CountingKeyed()
    store.add(stand_in(PLAX.phase_model, phase_net))
    # Frames the clip's own curve would not give (its extrema are 28, 56 and 42, 70).
    earlier = (_phases("doppler", (1,), (2,)), _phases("plax", (30, 58), (44,)))
    result = run_measurements_2d_plax(clip, store, earlier=earlier)
    assert result.status is PipelineStatus.OK, result.message
    found = {f.name: f for f in result.findings}
    assert found["LVIDd"].frames == found["IVSd"].frames == found["AoRoot"].frames == (30, 58)
    assert found["LVIDs"].frames == found["LAd"].frames == (44,)
    assert found["LVIDd"].value == pytest.approx(
        np.median(distance[[30, 58]]) * CM_PER_PX, rel=0.01
    )
    assert all(
        f.flags == ("phase_from_echonet_lvh", "source_not_3_4_cropped") for f in found.values()
    )
    # The phase model ran on the three phase frames only: no scan, so no per-frame curve.
    assert phase_net.frames == 3 and "LVID_cm" not in result.series

    a4c = run_measurements_2d_a4c(
        clip, keyed_store(tmp_path, A4C.models), earlier=(_phases("a4c", (31,), (45,)),)
    )
    (rv,) = a4c.findings
    assert rv.frames == (31,) and "phase_from_lv_area" in rv.flags


class KeyedLvh(nn.Module):
    """An EchoNet-LVH stand-in on the keyed clip (BGR input): its four points are red, green,
    red, green, so its LVID (points 1 to 2) is the dots' distance."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, g, r = x[:, 0], x[:, 1], x[:, 2]
        red = (r > 0.6) & (g < 0.3) & (b < 0.3)
        green = (g > 0.6) & (r < 0.3) & (b < 0.3)
        return {"out": torch.stack([red, green, red, green], dim=1).float() * 40.0 - 20.0}


def test_a_plax_clip_is_scanned_once_when_its_pipelines_run_together(tmp_path: Path) -> None:
    clip, _ = keyed_clip()
    store = keyed_store(tmp_path, PLAX.models)
    store.add(stand_in("echonet-lvh-plax", KeyedLvh()))
    decision = ViewDecision(View.PLAX, "test", 1.0)
    lvh, measured = run_pipelines(clip, decision, store).pipelines
    assert lvh.pipeline == "plax" and lvh.series["ED_frames"] == (28.0, 56.0)
    found = {f.name: f for f in measured.findings}
    # EchoNet-LVH's end-systoles (its smoothing keeps 14, tests/test_plax.py), not the
    # (42, 70) this pipeline's own scan finds.
    assert lvh.series["ES_frames"] == (14.0, 42.0, 70.0)
    assert found["AoRoot"].frames == (28, 56) and found["LAd"].frames == (14, 42, 70)
    assert all("phase_from_echonet_lvh" in f.flags for f in found.values())
    assert "LVID_cm" not in measured.series
    # EchoNet-LVH measured the walls and the cavity: they are not measured a second time.
    assert {f.name for f in lvh.findings} == {"IVSd", "LVIDd", "LVIDs", "LVPWd"}
    assert set(found) == {"AoRoot", "AoAsc", "LAd"}
    assert measured.message == "IVSd, LVIDd, LVIDs, LVPWd measured by plax, not again"


def _given(
    pipeline: str, *names: str, status: PipelineStatus = PipelineStatus.OK
) -> PipelineResult:
    clip, _ = keyed_clip(frames=4)
    model = stand_in(PLAX.phase_model, KeyedNet())
    points = FramePoints([0], np.array([[[30.0, 30.0], [60.0, 80.0]]]))
    findings = tuple(
        dataclasses.replace(f, name=n)
        for n in names
        if (f := make_finding(PLAX.targets[0], points, clip, model, (), False)) is not None
    )
    return PipelineResult(pipeline, status, findings)


def _counting_store(
    tmp_path: Path, names: tuple[str, ...]
) -> tuple[ModelStore, dict[str, CountingKeyed]]:
    store, nets = ModelStore(tmp_path), {name: CountingKeyed() for name in names}
    for name, net in nets.items():
        store.add(stand_in(name, net))
    return store, nets


def test_a_value_an_earlier_pipeline_gave_is_not_measured_again(tmp_path: Path) -> None:
    clip, _ = keyed_clip()
    earlier = (_given("plax", "IVSd", "LVIDd", "LVPWd"), _phases("plax", (30, 58), (44,)))
    store, nets = _counting_store(tmp_path, PLAX.models)
    result = run_measurements_2d_plax(clip, store, earlier=earlier)
    assert {f.name for f in result.findings} == {"LVIDs", "AoRoot", "AoAsc", "LAd"}
    assert result.message == "IVSd, LVIDd, LVPWd measured by plax, not again"
    # The LVID model measures LVIDs on the one end-systole only; IVS and LVPW do not run.
    assert (
        nets["echonet-measurements-lvid"].frames == 1
        and nets["echonet-measurements-aorta"].frames == 2
    )
    assert nets["echonet-measurements-ivs"].frames == nets["echonet-measurements-lvpw"].frames == 0

    # Asked to, or when the earlier pipeline failed, every value is measured here.
    store, nets = _counting_store(tmp_path, PLAX.models)
    again = run_view(clip, store, PLAX, Measurements2DOptions(remeasure=True), earlier)
    assert len(again.findings) == 7 and again.message == ""
    assert (
        nets["echonet-measurements-lvid"].frames == 3
        and nets["echonet-measurements-ivs"].frames == 2
    )
    failed = (_given("plax", "IVSd", status=PipelineStatus.FAILED), *earlier[1:])
    assert len(run_measurements_2d_plax(clip, store, earlier=failed).findings) == 7


def test_only_values_measured_before_means_nothing_to_do_not_a_failure(tmp_path: Path) -> None:
    clip, _ = keyed_clip()
    # No beats given either: the LVID model does not scan for phases nothing needs.
    earlier = (_given("plax", "IVSd", "LVIDd", "LVIDs", "LVPWd"),)
    store, nets = _counting_store(
        tmp_path, ("echonet-measurements-ivs", "echonet-measurements-lvid")
    )
    result = run_measurements_2d_plax(clip, store, earlier=earlier)
    assert result.status is PipelineStatus.NOT_APPLICABLE and not result.findings
    assert result.message.startswith("IVSd, LVIDd, LVIDs measured by plax, not again | ")
    assert "--name echonet-measurements-lvpw" in result.message
    assert nets["echonet-measurements-ivs"].frames == nets["echonet-measurements-lvid"].frames == 0


@pytest.mark.parametrize(
    ("earlier", "options"),
    [
        ((_phases("plax", (), (44,)),), Measurements2DOptions()),  # no ED found
        (
            (dataclasses.replace(_phases("plax", (30,), (44,)), status=PipelineStatus.FAILED),),
            Measurements2DOptions(),
        ),
        ((_phases("a4c", (30,), (44,)),), Measurements2DOptions()),  # another view's pipeline
        ((_phases("plax", (30,), (44,)),), Measurements2DOptions(share_phases=False)),
    ],
    ids=["no-end-diastole", "failed", "other-view", "sharing-off"],
)
def test_without_the_views_beats_the_phase_model_scans_the_clip(
    tmp_path: Path, earlier: tuple[PipelineResult, ...], options: Measurements2DOptions
) -> None:
    clip, _ = keyed_clip()
    result = run_view(clip, keyed_store(tmp_path, PLAX.models), PLAX, options, earlier)
    found = {f.name: f for f in result.findings}
    assert found["LVIDd"].frames == (28, 56) and found["LAd"].frames == (42, 70)
    assert found["LVIDd"].flags == ("source_not_3_4_cropped",)
    assert "LVID_cm" in result.series


def test_nothing_installed_means_no_value_and_one_message_with_the_commands(
    tmp_path: Path,
) -> None:
    clip, _ = keyed_clip(frames=4)
    for view, run in ((PLAX, run_measurements_2d_plax), (A4C, run_measurements_2d_a4c)):
        for models in (ModelStore(tmp_path), None):
            result = run(clip, models)
            assert result.status is PipelineStatus.MODEL_NOT_INSTALLED
            assert not result.findings and not result.series
            commands = re.findall(
                r"echo-node models import PATH --name (\S+?)(?:;|$)", result.message
            )
            assert commands == list(view.models)
    # Registered after each view's own pipeline; PSAX (pa) and subcostal (ivc) are not routed.
    assert pipelines_for("plax").index(run_measurements_2d_plax) > pipelines_for("plax").index(
        run_plax
    )
    assert run_measurements_2d_a4c in pipelines_for("a4c")
    every = {t.model for t in (*PLAX.targets, *A4C.targets)}
    assert not {"echonet-measurements-pa", "echonet-measurements-ivc"} & every


def test_no_calibrated_region_reports_no_length(tmp_path: Path) -> None:
    clip, _ = keyed_clip(frames=4)
    result = run_view(dataclasses.replace(clip, regions=()), keyed_store(tmp_path, A4C.models), A4C)
    assert result.status is PipelineStatus.NOT_APPLICABLE and not result.findings


def _phantom(name: str, count: int) -> Clip:
    clip = make_clip(name, 5, rows=120, columns=160, cycles=1).to_clip()
    return dataclasses.replace(
        clip, frames=ArrayFrames(np.stack(list(clip.iter_frames(range(count)))))
    )


@pytest.mark.model
def test_published_format_checkpoint_loads_strictly_and_runs_deterministically(
    tmp_path: Path,
) -> None:
    spec = small_spec(PLAX.phase_model, input_height=120, input_width=160)
    # The published layout: a flat Lightning state dict, every key prefixed "m.".
    save_checkpoint(tmp_path / spec.file, random_state(spec, seed=3), "m.")
    store = store_with(tmp_path, spec)
    clip = _phantom("plax", 8)
    results = [run_measurements_2d_plax(clip, store) for _ in range(2)]
    assert results[0] == results[1]
    result = results[0]
    assert result.status is PipelineStatus.OK, result.message
    assert {f.name for f in result.findings} == {"LVIDd", "LVIDs"}
    assert len(result.series["LVID_cm"]) == 4  # the phase scan: every second frame of 8
    for finding in result.findings:
        assert finding.provenance.sha256 == sha256_file(tmp_path / spec.file)
        assert finding.provenance.name == spec.name and finding.provenance.device == "cpu"
        assert finding.value > 0 and len(finding.points) == 2 * len(finding.frames)
        assert all(0 <= f < 8 for f in finding.frames)
    for name in ("ivs", "lvpw", "aortic_root", "aorta", "la"):
        assert f"--name echonet-measurements-{name}" in result.message


def test_a_checkpoint_with_another_head_is_refused_with_the_reason(tmp_path: Path) -> None:
    spec = small_spec(A4C.phase_model, input_height=120, input_width=160)
    with torch.device("meta"):
        three = build(dataclasses.replace(spec, output_channels=3))
    state = three.to_empty(device="cpu").state_dict()  # values are irrelevant: shapes are not
    save_checkpoint(tmp_path / spec.file, state, "m.")
    result = run_measurements_2d_a4c(_phantom("a4c", 2), store_with(tmp_path, spec))
    assert result.status is PipelineStatus.FAILED and not result.findings
    assert "is (3, 256, 1, 1) in the file, (2, 256, 1, 1)" in result.message


@pytest.mark.peer
def test_sr_with_the_new_codes_validates_and_dumps(tmp_path: Path) -> None:
    clip, _ = keyed_clip(frames=30, period=12)
    options = Measurements2DOptions(peak_distance=8)
    plax = run_view(clip, keyed_store(tmp_path, PLAX.models), PLAX, options)
    a4c = run_view(clip, keyed_store(tmp_path, A4C.models), A4C, options)
    assert plax.status is PipelineStatus.OK and a4c.status is PipelineStatus.OK
    header = source_header()  # a real 30-frame US header: frame numbers stay in range
    other = sibling(header)
    sources = [
        SourceClip(
            header, ClipResult(header.SOPInstanceUID, ViewDecision(View.PLAX, "t", 1.0), (plax,))
        ),
        SourceClip(
            other, ClipResult(other.SOPInstanceUID, ViewDecision(View.A4C, "t", 1.0), (a4c,))
        ),
    ]
    path = tmp_path / "sr.dcm"
    build_sr(sources, node=NODE).save_as(path, enforce_file_format=True)
    errors, _ = dciodvfy(path)
    assert errors == []
    dump = subprocess.run(
        ["dsrdump", "+Pc", "+Pl", "+Pu", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert dump.stderr.strip() == ""
    text = dump.stdout
    for finding in (*plax.findings, *a4c.findings):
        coding = CODING_5200[finding.name]
        value = re.search(
            rf'NUM:\({re.escape(coding.concept.value)},LN,"[^"]*"\)="([^"]+)" \(cm,UCUM', text
        )
        assert value is not None, finding.name
        # Written as the report rounds a dimension: to 0.01 cm.
        assert float(value[1]) == pytest.approx(finding.value, abs=0.005 + 1e-9)
    sites = re.findall(r'"Finding Site"\)=\((\d+),SCT', text)
    order = [codes.LEFT_VENTRICLE, codes.RIGHT_VENTRICLE, codes.LEFT_ATRIUM, codes.AORTA]
    assert sites == [c.value for c in order]  # TID 5200 section order
    assert '"Image View")=(399214001,SCT,' in text  # RV base from the A4C clip
    assert '"Cardiac Cycle Point")=(416430001,SCT,' in text  # LA at end-systole
