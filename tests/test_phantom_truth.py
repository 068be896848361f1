"""The phantom's ground truth agrees with what it draws, measured from its masks and pixels."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pydicom
import pytest

from ai.phantom import generate_study, region_of
from ai.phantom.sector import Label
from ai.phantom.study import RenderedClip, make_clip

SMALL: dict[str, Any] = {"rows": 300, "columns": 400, "cycles": 2, "frame_rate": 30.0}
SEEDS = (31, 32)


@pytest.fixture(scope="module", params=SEEDS)
def study(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    seed: int = request.param
    out = tmp_path_factory.mktemp(f"truth{seed}")
    generate_study(out, seed, compressed=False, **SMALL)
    return out


def load(study: Path, name: str) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    pixels = pydicom.dcmread(study / f"{name}.dcm").pixel_array
    doc: dict[str, Any] = json.loads((study / f"{name}.json").read_text())
    return pixels, doc


def rendered(doc: dict[str, Any], name: str) -> RenderedClip:
    clip = make_clip(name, doc["seed"], **SMALL)
    assert clip.labels is not None
    return clip


def test_written_pixels_are_the_rendered_label_maps(study: Path) -> None:
    for name in ("plax", "a4c"):
        pixels, doc = load(study, name)
        clip = rendered(doc, name)
        assert np.array_equal(pixels[..., 0], clip.frames)  # raw RGB: grey in every channel
        assert clip.labels is not None
        blood = pixels[..., 0][clip.labels == Label.LV].mean()
        muscle = pixels[..., 0][np.isin(clip.labels, [Label.IVS, Label.LVPW, Label.WALL])].mean()
        assert muscle > 4 * blood


def test_plax_keypoints_give_the_lengths_in_cm(study: Path) -> None:
    _, doc = load(study, "plax")
    region = region_of(doc, 0)
    for frame in doc["frames"]:
        points = np.asarray(frame["keypoints_px"])
        steps = np.diff(points, axis=0)
        lengths = np.hypot(
            steps[:, 0] * region.physical_delta_x, steps[:, 1] * region.physical_delta_y
        )
        expected = [frame["LVPW_cm"], frame["LVID_cm"], frame["IVS_cm"]]
        assert lengths == pytest.approx(expected, abs=2e-3)
    diastolic = doc["diastolic"]
    for index in doc["ed_frames"]:
        frame = doc["frames"][index]
        assert frame["IVS_cm"] == pytest.approx(diastolic["IVSd_cm"])
        assert frame["LVID_cm"] == pytest.approx(diastolic["LVIDd_cm"])
        assert frame["LVPW_cm"] == pytest.approx(diastolic["LVPWd_cm"])
    for index in doc["es_frames"]:
        assert doc["frames"][index]["LVID_cm"] == pytest.approx(doc["systolic"]["LVIDs_cm"])
    lvid = [f["LVID_cm"] for f in doc["frames"]]
    assert max(lvid) == pytest.approx(diastolic["LVIDd_cm"])
    assert min(lvid) == pytest.approx(doc["systolic"]["LVIDs_cm"])
    assert 0.6 <= diastolic["IVSd_cm"] <= 1.6 and 3.5 <= diastolic["LVIDd_cm"] <= 6.5


def _labels_along(labels: npt.NDArray[np.uint8], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Labels sampled every 0.05 px on the segment a → b (nearest pixel)."""
    n = int(np.hypot(*(b - a)) / 0.05) + 1
    t = np.linspace(0.0, 1.0, n)
    xy = np.round(a[None, :] + t[:, None] * (b - a)[None, :]).astype(int)
    out: np.ndarray = labels[xy[:, 1], xy[:, 0]]
    return out


def _edge_error(
    labels: npt.NDArray[np.uint8], point: np.ndarray, normal: np.ndarray, before: int, after: int
) -> float:
    """How far past the true edge (through point, across normal) a pixel has the wrong label.

    Pixel centres within 4 px of the point: those labelled `before` should lie behind the edge
    (signed distance < 0), those labelled `after` in front of it. Returns the largest overshoot.
    """
    x0, y0 = np.floor(point).astype(int) - 4
    ys, xs = np.mgrid[y0 : y0 + 10, x0 : x0 + 10]
    signed = (xs - point[0]) * normal[0] + (ys - point[1]) * normal[1]
    along_edge = np.abs((xs - point[0]) * normal[1] - (ys - point[1]) * normal[0])
    near = along_edge <= 3.0
    window = labels[ys, xs]
    wrong_before = signed[near & (window == before)]
    wrong_after = -signed[near & (window == after)]
    assert wrong_before.size and wrong_after.size
    return float(max(wrong_before.max(), wrong_after.max(), 0.0))


def test_plax_walls_are_drawn_where_the_keypoints_say(study: Path) -> None:
    pixels, doc = load(study, "plax")
    clip = rendered(doc, "plax")
    assert clip.labels is not None
    for index in (*doc["ed_frames"], *doc["es_frames"]):
        points = np.asarray(doc["frames"][index]["keypoints_px"])
        direction = (points[3] - points[0]) / np.linalg.norm(points[3] - points[0])
        start, end = points[0] - 2 * direction, points[3] + 2 * direction
        along = _labels_along(clip.labels[index], start, end)
        step = np.linalg.norm(end - start) / (len(along) - 1)
        # Expected sequence posterior → anterior: pericardium, LVPW, LV, IVS, RV blood.
        sequence = [Label.PERICARDIUM, Label.LVPW, Label.LV, Label.IVS, Label.BLOOD]
        changes = np.flatnonzero(along[1:] != along[:-1])
        assert [along[0], *along[changes + 1]] == sequence
        found = start[None, :] + ((changes + 0.5) * step)[:, None] * direction[None, :]
        assert np.linalg.norm(found - points, axis=1).max() <= 1.5
        # Each keypoint sits on its label edge: no pixel is on the wrong side by over 1 px.
        for k in range(4):
            error = _edge_error(
                clip.labels[index], points[k], direction, sequence[k], sequence[k + 1]
            )
            assert error <= 1.0, (index, k, error)
        # The pixels show it too: dark cavity between bright walls on the same line.
        grey = pixels[index][..., 0].astype(float)
        cavity = _profile(grey, points[1], points[2])
        wall = _profile(grey, points[0], points[1])
        septum = _profile(grey, points[2], points[3])
        assert wall > 3 * cavity and septum > 3 * cavity


def _profile(grey: npt.NDArray[np.float64], a: np.ndarray, b: np.ndarray) -> float:
    inner = a + 0.2 * (b - a), a + 0.8 * (b - a)
    samples = np.linspace(inner[0], inner[1], 20)
    values = [grey[round(y), round(x)] for x, y in samples]
    return float(np.mean(values))


def test_a4c_mask_area_and_volumes_match_the_truth(study: Path) -> None:
    _, doc = load(study, "a4c")
    clip = rendered(doc, "a4c")
    assert clip.labels is not None
    region = region_of(doc, 0)
    pixel_area = region.physical_delta_x * region.physical_delta_y
    assert doc["ef_percent"] == pytest.approx(100 * (1 - doc["esv_ml"] / doc["edv_ml"]))
    assert 20 <= doc["ef_percent"] <= 75
    volumes = [f["lv_volume_ml"] for f in doc["frames"]]
    assert volumes[doc["ed_frames"][0]] == pytest.approx(doc["edv_ml"]) == max(volumes)
    assert volumes[doc["es_frames"][0]] == pytest.approx(doc["esv_ml"]) == min(volumes)
    for frame in doc["frames"][:: max(1, len(doc["frames"]) // 6)]:
        outline = np.asarray(frame["lv_outline_px"])
        drawn = np.isin(clip.labels[frame["index"]], [Label.LV, Label.VALVE])
        traced = np.zeros_like(drawn, dtype=np.uint8)
        cv2.fillPoly(traced, [np.round(outline * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        lv = clip.labels[frame["index"]] == Label.LV
        # Drawn LV and traced outline differ at most on a rim of one pixel around the outline.
        kernel = np.ones((3, 3), np.uint8)
        rim = cv2.dilate(traced, kernel) - cv2.erode(traced, kernel)
        assert not np.any(lv & (traced == 0) & (rim == 0))
        assert not np.any((traced == 1) & ~drawn & (rim == 0))
        assert lv.sum() * pixel_area == pytest.approx(frame["lv_area_cm2"], rel=0.04)
        disks = _method_of_disks(lv, frame, region.physical_delta_x)
        # Pixel steps limit the method of disks: ±6 %, or ±2 ml for a small end-systole.
        assert disks == pytest.approx(frame["lv_volume_ml"], rel=0.06, abs=2.0)


def _method_of_disks(lv: npt.NDArray[np.bool_], frame: dict[str, Any], cm_per_px: float) -> float:
    """Single-plane Simpson's rule on the drawn mask: the volume an EF pipeline would get."""
    apex = np.asarray(frame["apex_px"])
    base = np.mean(np.asarray(frame["mitral_annulus_px"]), axis=0)
    axis = (base - apex) / np.linalg.norm(base - apex)
    ys, xs = np.nonzero(lv)
    offsets = np.stack([xs, ys], axis=1) - apex
    along = offsets @ axis
    across = offsets @ np.array([-axis[1], axis[0]])
    length = np.linalg.norm(base - apex)
    volume = 0.0
    disks = 40
    for k in range(disks):
        middle = (k + 0.5) * length / disks
        slab = np.abs(along - middle) <= 0.5  # the pixels the disk's diameter line crosses
        if slab.any():
            diameter = (across[slab].max() - across[slab].min() + 1) * cm_per_px
            volume += math.pi * (diameter / 2) ** 2 * (length / disks) * cm_per_px
    return volume


@pytest.fixture(scope="module")
def jpeg_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("truth_jpeg")
    generate_study(out, SEEDS[0], compressed=True, **SMALL)
    return out


@pytest.mark.parametrize("name", ["tr_cw", "mv_pw"])
def test_doppler_peaks_are_where_the_truth_says(study: Path, name: str) -> None:
    _check_doppler_peaks(study, name, tolerance_px=1.01)


@pytest.mark.parametrize("name", ["tr_cw", "mv_pw"])
def test_doppler_peaks_survive_jpeg(jpeg_study: Path, name: str) -> None:
    _check_doppler_peaks(jpeg_study, name, tolerance_px=2.01)


def _check_doppler_peaks(study: Path, name: str, tolerance_px: float) -> None:
    pixels, doc = load(study, name)
    spectral = region_of(doc, doc["spectral_region_index"])
    baseline = doc["baseline_row"]
    red, green = pixels[..., 0].astype(int), pixels[..., 1].astype(int)
    lit = (red > 60) & ~((green > 200) & (red < 100))  # bright, not the ECG trace
    waves = ["TR"] if name == "tr_cw" else ["E", "A"]
    assert len(doc["beats"]) >= 2
    for beat in doc["beats"]:
        for wave in waves:
            peak = beat[wave]
            column = lit[spectral.min_y0 : spectral.max_y1 + 1, peak["peak_column"]]
            rows = np.flatnonzero(column) + spectral.min_y0
            rows = rows[rows != baseline]
            far = rows.max() if name == "tr_cw" else rows.min()
            velocity = (far - baseline) * spectral.physical_delta_y
            assert velocity == pytest.approx(
                peak["peak_velocity_cm_s"], abs=tolerance_px * abs(spectral.physical_delta_y)
            )
            assert abs(peak["peak_row"] - far) <= tolerance_px
            time_s = (peak["peak_column"] - spectral.min_x0) * spectral.physical_delta_x
            assert time_s == pytest.approx(peak["peak_time_s"])
    # Sign convention: TR away from the apical probe (below), mitral inflow toward it (above).
    velocities = [b[w]["peak_velocity_cm_s"] for b in doc["beats"] for w in waves]
    assert all(v < -150 for v in velocities) if name == "tr_cw" else all(v > 20 for v in velocities)
    expected = doc["expected"]
    if name == "tr_cw":
        assert max(-v for v in velocities) / 100 == pytest.approx(expected["TR_Vmax"]["value"])
        assert 2.0 * 0.94 <= expected["TR_Vmax"]["value"] <= 4.5
    else:
        e_waves = [b["E"]["peak_velocity_cm_s"] for b in doc["beats"]]
        assert expected["MV_E"]["value"] == pytest.approx(float(np.mean(e_waves)))
        assert expected["MV_E_A"]["value"] == pytest.approx(
            expected["MV_E"]["value"] / expected["MV_A"]["value"]
        )


@pytest.mark.parametrize("name", ["tr_cw", "mv_pw"])
def test_ecg_trace_is_green_with_r_waves_where_the_truth_says(study: Path, name: str) -> None:
    pixels, doc = load(study, name)
    ecg = doc["ecg"]
    spectral = region_of(doc, 1)
    red, green = pixels[..., 0].astype(int), pixels[..., 1].astype(int)
    trace = (green > 200) & (red < 100)
    top, bottom = ecg["rows"]
    assert trace[top : bottom + 1].any()
    assert not trace[: top - 2].any() and not trace[bottom + 2 :].any()
    columns = np.flatnonzero(trace.any(axis=0))
    assert columns.min() <= spectral.min_x0 + 1 and columns.max() >= spectral.max_x1 - 1
    highest = np.array([np.flatnonzero(trace[:, c]).min() for c in columns])
    resting = float(np.median(highest))
    # The trace stands up (R wave) at each R-wave time and nowhere else.
    peaks = columns[highest < resting - 0.5 * (resting - top)]
    r_columns = [spectral.min_x0 + r / spectral.physical_delta_x for r in ecg["r_wave_times_s"]]
    assert len(r_columns) >= 2
    for column in peaks:
        assert min(abs(column - r) for r in r_columns) <= 3
    for r in r_columns:
        if spectral.min_x0 + 3 <= r <= spectral.max_x1 - 3:
            assert min(abs(column - r) for column in peaks) <= 2
