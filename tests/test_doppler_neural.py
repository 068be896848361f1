"""EchoNet-Measurements Doppler models beside the classical engine: choice, geometry, ECG, runs.

Checkpoints are made here with seeded random weights in the published layout (a flat state dict,
keys prefixed `m.`) and run at a small input size: at 426×1024 one image takes ~20 s on this
shared CPU. The geometry and the point → velocity rule are checked on synthetic heat maps.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from ai.analyze import analyze
from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.findings import (
    Aggregation,
    ClipResult,
    Finding,
    PipelineResult,
    PipelineStatus,
    Provenance,
    View,
    ViewDecision,
)
from ai.models import ModelStore, default_registry
from ai.models.loader import sha256_file
from ai.phantom import generate_study
from ai.phantom.study import make_clip
from ai.pipelines import doppler_neural as neural
from ai.pipelines.doppler import beat_spans
from ai.pipelines.doppler_neural import (
    Target,
    interpret,
    keyword_target,
    model_input,
    remove_ecg,
    run_doppler_neural,
    shape_target,
    strip_geometry,
)
from echo_node.results import SourceClip, build_sr
from echo_node.results.report import build_report
from tests.test_models import random_state, save_checkpoint
from tests.test_results_data import NODE, dciodvfy, source_header

torch.set_num_threads(2)

SMALL = {"input_height": 64, "input_width": 160}  # the model grid of the test runs
PROVENANCE = Provenance("echonet-measurements-trvmax", "main", sha256="cd" * 32)


def spectral(
    y0: int, rows: int, columns: int, data_type: int = 4, baseline: int = 60, delta: float = -2.0
) -> UltrasoundRegion:
    return UltrasoundRegion(
        spatial_format=3,
        data_type=data_type,
        flags=0,
        min_x0=20,
        min_y0=y0,
        max_x1=columns - 40,
        max_y1=rows - 10,
        physical_units_x=4,
        physical_units_y=7,
        physical_delta_x=0.004,
        physical_delta_y=delta,
        reference_pixel_y0=baseline,
        reference_physical_value_y=0.0,
    )


def text_clip(text: str, data_type: int) -> Clip:
    frames = np.zeros((1, 60, 80, 3), np.uint8)
    region = spectral(20, 60, 80, data_type, baseline=10)
    return Clip(ArrayFrames(frames), 60, 80, (region,), metadata={"SeriesDescription": text})


# --- which model -----------------------------------------------------------------------------

CW, PW = 4, 3


@pytest.mark.parametrize(
    ("text", "data_type", "model"),
    [
        ("CW TR apical 4", CW, neural.TR),
        ("AV CW 5ch", CW, neural.AV),
        ("LVOT CW", CW, neural.AV),  # the classical rule: LVOT is aortic in CW
        ("MR jet", CW, neural.MR),
        ("TDI e' lat", PW, neural.E_LAT),
        ("tissue doppler septal", PW, neural.E_MED),
        ("PW LVOT", PW, neural.LVOT),
        ("MV inflow PW", PW, neural.MV),
    ],
)
def test_keywords_choose_the_model(text: str, data_type: int, model: str) -> None:
    clip = text_clip(text, data_type)
    assert keyword_target(clip, clip.regions[0]) == Target(model)


@pytest.mark.parametrize(
    ("text", "data_type"), [("TDI", PW), ("e' lat med", PW), ("PW TR", PW), ("", PW), ("", CW)]
)
def test_keywords_that_do_not_decide(text: str, data_type: int) -> None:
    clip = text_clip(text, data_type)
    decided = keyword_target(clip, clip.regions[0])
    if text:
        assert isinstance(decided, str) and decided  # not applicable, with the reason
    else:
        assert decided is None  # left to the classical engine


def test_without_keywords_the_classical_engine_decides() -> None:
    mitral = make_clip("mv_pw", 12, rows=300, columns=400, heart_rate_bpm=60).to_clip()
    assert shape_target(mitral) == Target(neural.MV, ("flow_identified_by_shape",))
    blank = text_clip("", CW)
    reason = shape_target(blank)
    assert isinstance(reason, str) and "recognised none" in reason


# --- geometry and the point → velocity rule ------------------------------------------------


def test_training_layout_is_fed_unchanged_other_layouts_resampled() -> None:
    spec = default_registry().get(neural.TR)
    geometry, note = strip_geometry(768, 1024, 342, spec)
    assert (geometry.y0, geometry.width, geometry.height) == (342, 1024, 426) and not note
    assert (geometry.out_width, geometry.out_height) == (1024, 426)
    geometry, note = strip_geometry(768, 1024, 300, spec)  # same image, strip elsewhere
    assert (geometry.out_width, geometry.out_height) == (1024, 426) and "row 300" in note
    geometry, note = strip_geometry(600, 800, 267, spec)
    assert (geometry.width, geometry.height, geometry.out_height) == (800, 333, 426)
    assert "600x800" in note and "row 267" in note


def heat_map(height: int, width: int, x: int, y: int) -> np.ndarray:
    maps = np.random.default_rng(0).random((1, height, width)).astype(np.float32) * 0.5
    maps[0, y, x] = 0.9
    return maps


@pytest.mark.parametrize(("model_y", "sign"), [(250, -1.0), (20, 1.0)])
def test_velocity_in_the_training_layout(model_y: int, sign: float) -> None:
    """768×1024, y0 342, baseline 60 rows below it, -2 cm/s per row: the reference's rule."""
    spec = default_registry().get(neural.TR)
    region = spectral(342, 768, 1024)
    geometry, note = strip_geometry(768, 1024, 342, spec)
    maps = heat_map(426, 1024, 500, model_y)
    result = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.TR), 0)
    (finding,) = result.findings
    row = 342 + model_y
    assert finding.points == ((500.0, float(row)),)
    assert finding.value == pytest.approx((row - 402) * -2.0)
    assert np.sign(finding.value) == sign  # below the baseline: away, negative
    # The reference: |PhysicalDeltaY| × (pred_y − (y0 + ReferencePixelY0)).
    assert abs(finding.value) == pytest.approx(abs(2.0 * (row - (342 + 60))))
    assert finding.flags == () and result.message == ""


@pytest.mark.parametrize(("model_y", "sign"), [(300, -1.0), (15, 1.0)])
def test_velocity_in_a_resampled_layout(model_y: int, sign: float) -> None:
    """600×800 with y0 267: the 800×333 strip is fed as 1024×426; the point comes back to
    source pixels and the velocity is the source calibration's, to the pixel fraction."""
    spec = default_registry().get(neural.TR)
    region = spectral(267, 600, 800, baseline=47, delta=-2.5)
    geometry, note = strip_geometry(600, 800, 267, spec)
    maps = heat_map(426, 1024, 640, model_y)
    result = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.TR), 0)
    (finding,) = result.findings
    x = (640 + 0.5) * 800 / 1024 - 0.5
    y = 267 + (model_y + 0.5) * 333 / 426 - 0.5
    assert finding.points[0] == pytest.approx((x, y))
    assert finding.value == pytest.approx((y - (267 + 47)) * -2.5)
    assert np.sign(finding.value) == sign
    assert "outside_training_layout" in finding.flags
    assert "600x800" in result.message and "row 267" in result.message


def test_e_prime_is_a_speed_and_mitral_points_are_ordered() -> None:
    spec = default_registry().get(neural.MV)
    region = spectral(342, 768, 1024, data_type=PW, baseline=300, delta=-0.5)
    geometry, note = strip_geometry(768, 1024, 342, spec)
    e_prime = interpret(heat_map(426, 1024, 100, 380), geometry, note, region, PROVENANCE,
                        Target(neural.E_LAT), 0)  # fmt: skip
    assert e_prime.findings[0].value == pytest.approx(abs((342 + 380 - 642) * -0.5))
    maps = np.zeros((2, 426, 1024), np.float32)
    maps[1, 100, 600] = 1.0  # channel 1 (E) right of channel 0 (A): left is E, as the reference
    maps[0, 200, 500] = 1.0
    result = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.MV), 0)
    found = {f.name: f for f in result.findings}
    assert found["MV_E"].points == ((500.0, 542.0),) and found["MV_A"].points == ((600.0, 442.0),)
    assert found["MV_E"].value == pytest.approx(50.0) and found["MV_A"].value == pytest.approx(
        100.0
    )
    assert found["MV_E_A"].value == pytest.approx(0.5) and found["MV_E_A"].unit == "1"
    assert "EA_order_from_position" in found["MV_E"].flags
    maps[0, 200, 500], maps[0, 200, 950] = 0.0, 1.0  # 350 columns apart: not one beat
    apart = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.MV), 0)
    assert apart.status == PipelineStatus.FAILED and not apart.findings


def beat_maps(channels: int, peaks: dict[int, list[tuple[int, int, float]]]) -> np.ndarray:
    """Heat maps (C, 426, 1024) of zeros with the given (x, y, heat) peaks per channel."""
    maps = np.zeros((channels, 426, 1024), np.float32)
    for channel, points in peaks.items():
        for x, y, heat in points:
            maps[channel, y, x] = heat
    return maps


def test_each_beat_is_read_and_combined_as_echo_labs_report() -> None:
    """Training layout (grid = source columns): a peak in each beat; TR the fastest beat, e'
    the mean; a beat the model marks at under half the image's heat is left out."""
    spec = default_registry().get(neural.TR)
    region = spectral(342, 768, 1024)  # baseline at row 402, -2 cm/s per row
    geometry, note = strip_geometry(768, 1024, 342, spec)
    spans = [(100, 300), (300, 500), (500, 700), (700, 900)]
    # Peaks 150, 170 and 160 rows below y0 (342): (row - 402) × -2 cm/s; the fourth beat's
    # peak is weak (0.3 of the image's 0.9).
    maps = beat_maps(1, {0: [(200, 150, 0.9), (400, 170, 0.8), (600, 160, 0.85), (800, 40, 0.3)]})
    result = interpret(
        maps, geometry, note, region, PROVENANCE, Target(neural.TR), 4, spans, ("beats_from_ecg",)
    )
    (tr,) = result.findings
    velocities = [(150 + 342 - 402) * -2.0, (170 + 342 - 402) * -2.0, (160 + 342 - 402) * -2.0]
    assert [b.value for b in tr.beats] == pytest.approx(velocities)
    assert [b.points for b in tr.beats] == [((200.0, 492.0),), ((400.0, 512.0),), ((600.0, 502.0),)]
    assert {b.frame for b in tr.beats} == {4} and tr.frames == (4,)
    assert tr.value == pytest.approx(min(velocities))  # the fastest: most negative here
    assert tr.aggregation is Aggregation.MAX and "beats_from_ecg" in tr.flags
    e_lat = interpret(
        maps, geometry, note, region, PROVENANCE, Target(neural.E_LAT), 4, spans, ()
    ).findings[0]
    assert e_lat.aggregation is Aggregation.MEAN
    assert e_lat.value == pytest.approx(float(np.mean([abs(v) for v in velocities])))
    # No beat known: the image's maximum alone, as the reference reads it.
    (alone,) = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.TR), 4).findings
    assert alone.points == ((200.0, 492.0),) and alone.beats == ()
    assert alone.aggregation is Aggregation.SINGLE


def test_mitral_e_and_a_per_beat_give_mean_e_mean_a_and_their_ratio() -> None:
    spec = default_registry().get(neural.MV)
    region = spectral(342, 768, 1024, data_type=PW, baseline=300, delta=-0.5)  # 0 at row 642
    geometry, note = strip_geometry(768, 1024, 342, spec)
    spans = [(0, 400), (400, 800)]
    maps = beat_maps(
        2,
        {1: [(100, 100, 1.0), (500, 140, 0.9)], 0: [(250, 200, 1.0), (650, 220, 0.9)]},
    )
    result = interpret(maps, geometry, note, region, PROVENANCE, Target(neural.MV), 0, spans)
    found = {f.name: f for f in result.findings}
    e = [(642 - 442) * 0.5, (642 - 482) * 0.5]  # rows 100 and 140 below y0
    a = [(642 - 542) * 0.5, (642 - 562) * 0.5]
    assert [b.value for b in found["MV_E"].beats] == pytest.approx(e)
    assert [b.value for b in found["MV_A"].beats] == pytest.approx(a)
    assert found["MV_E"].value == pytest.approx(np.mean(e))
    assert found["MV_A"].value == pytest.approx(np.mean(a))
    ratio = found["MV_E_A"]
    assert ratio.value == pytest.approx(np.mean(e) / np.mean(a))
    assert ratio.aggregation is Aggregation.RATIO
    assert [b.value for b in ratio.beats] == pytest.approx(
        [x / y for x, y in zip(e, a, strict=True)]
    )
    assert ratio.beats[0].points == ((100.0, 442.0), (250.0, 542.0))


def test_ecg_pixels_are_zeroed_before_the_model() -> None:
    rendered = make_clip("tr_cw", 5, rows=768, columns=1024, heart_rate_bpm=60)
    frame = rendered.to_clip().frames[0]
    ecg = (frame[..., 1] > 200) & (frame[..., 0] < 100)
    assert ecg.sum() > 500  # the phantom's green trace
    cleaned = remove_ecg(frame)
    assert not cleaned[ecg].any() and np.array_equal(cleaned[~ecg], frame[~ecg])
    spec = default_registry().get(neural.TR)
    y0 = rendered.regions[1].min_y0
    geometry, note = strip_geometry(768, 1024, y0, spec)
    assert note == ""  # the phantom's 768×1024 layout is the training one
    tensor = model_input(frame, geometry, spec)[0].numpy()
    assert tensor.shape == (3, 768 - y0, 1024)
    assert not tensor[:, ecg[y0:]].any()
    assert np.allclose(tensor[:, ~ecg[y0:]], frame[y0:][~ecg[y0:]].T / 255.0)


# --- model store: not installed, installed, wrong head --------------------------------------


def tr_clip(rows: int = 300, columns: int = 400) -> Clip:
    clip = make_clip("tr_cw", 11, rows=rows, columns=columns, heart_rate_bpm=60).to_clip()
    return dataclasses.replace(clip, metadata={"SeriesDescription": "TR CW"})


def test_model_not_installed_gives_no_value(tmp_path: Path) -> None:
    for models in (ModelStore(tmp_path, threads=2), None):
        result = run_doppler_neural(tr_clip(), models)
        assert result.status == PipelineStatus.MODEL_NOT_INSTALLED and not result.findings
        assert f"echo-node models import PATH --name {neural.TR}" in result.message
    unnamed = dataclasses.replace(tr_clip(), metadata={})
    result = run_doppler_neural(unnamed, ModelStore(tmp_path, threads=2))
    assert result.status == PipelineStatus.MODEL_NOT_INSTALLED  # TR or AV: neither installed
    assert neural.TR in result.message and neural.AV in result.message


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """trvmax and mvpeak checkpoints, seeded random weights, flat dicts with keys `m.`..."""
    folder = tmp_path_factory.mktemp("models")
    registry = default_registry()
    for name, seed in ((neural.TR, 1), (neural.MV, 2)):
        spec = dataclasses.replace(registry.get(name), **SMALL)  # type: ignore[arg-type]
        registry = registry.replace(spec)
        state = random_state(spec, seed)
        assert all(not key.startswith("m.") for key in state)
        save_checkpoint(folder / spec.file, state, prefix="m.")
    return ModelStore(folder, registry, threads=2)


@pytest.mark.model
def test_random_checkpoint_runs_on_the_phantom_tr(store: ModelStore) -> None:
    clip = tr_clip()
    region = clip.regions[1]
    first = run_doppler_neural(clip, store)
    assert first.status == PipelineStatus.OK, first.message
    (finding,) = first.findings
    assert finding.name == "TR_Vmax" and finding.unit == "cm/s"
    assert finding.provenance.name == neural.TR
    assert finding.provenance.sha256 == sha256_file(store.path(neural.TR))
    assert "outside_training_layout" in finding.flags and "300x400" in first.message
    # One reading per beat the classical engine finds (the phantom draws its ECG), each inside
    # its beat's columns, its value the calibration's at its row; the fastest is reported.
    spans, how = beat_spans(clip, len(clip) - 1, biphasic=False)
    assert len(spans) >= 2 and how == ("beats_from_ecg",)
    assert 1 <= len(finding.beats) <= len(spans)
    for beat in finding.beats:
        ((x, y),) = beat.points
        assert any(a - 1 <= x < b for a, b in spans) and region.min_y0 - 0.5 <= y < 300
        assert beat.value == pytest.approx(
            (y - region.min_y0 - (region.reference_pixel_y0 or 0)) * region.physical_delta_y
        )
    assert finding.value == max((b.value for b in finding.beats), key=abs)
    assert finding.aggregation is Aggregation.MAX
    assert run_doppler_neural(clip, store) == first  # same weights, same input: same answer


@pytest.mark.model
def test_random_checkpoint_mvpeak_on_the_phantom_mv(store: ModelStore) -> None:
    clip = make_clip("mv_pw", 11, rows=300, columns=400, heart_rate_bpm=60).to_clip()
    clip = dataclasses.replace(clip, metadata={"SeriesDescription": "MV PW"})
    result = run_doppler_neural(clip, store)
    assert result.status == PipelineStatus.OK, result.message
    found = {f.name: f for f in result.findings}
    assert set(found) == {"MV_E", "MV_A", "MV_E_A"}
    assert found["MV_E"].points[0][0] <= found["MV_A"].points[0][0]
    assert found["MV_E_A"].value == pytest.approx(found["MV_E"].value / found["MV_A"].value)


@pytest.mark.model
def test_a_checkpoint_with_the_wrong_head_fails_with_the_reason(
    store: ModelStore, tmp_path: Path
) -> None:
    wrong = store.path(neural.MV).read_bytes()  # two output channels where trvmax has one
    (tmp_path / store.spec(neural.TR).file).write_bytes(wrong)
    other = ModelStore(tmp_path, store.registry, threads=2)
    result = run_doppler_neural(tr_clip(), other)
    assert result.status == PipelineStatus.FAILED and not result.findings
    assert "classifier.4.weight" in result.message and "shape" in result.message


# --- both engines through analyze, and the SR keeps one value and names the other ------------


@pytest.mark.model
def test_both_engines_come_back_and_the_one_not_reported_stays_on_record(
    store: ModelStore, tmp_path: Path
) -> None:
    generate_study(tmp_path, 11, rows=300, columns=400, cycles=1, frame_rate=20, heart_rate_bpm=60)
    path = tmp_path / "tr_cw.dcm"
    truth = json.loads((tmp_path / "tr_cw.json").read_text())
    result = analyze(path, models=store)
    by_name = {p.pipeline: p for p in result.pipelines}
    assert set(by_name) == {"doppler", "doppler_neural"}
    classical, model = by_name["doppler"].findings[0], by_name["doppler_neural"].findings[0]
    assert classical.name == model.name == "TR_Vmax"
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert header.SOPInstanceUID == truth["sop_instance_uid"]
    sr = build_sr([SourceClip(header, result)], node=NODE)
    nums = [i for i in _walk(sr.ContentSequence) if i.ValueType == "NUM"]
    tr = [n for n in nums if n.ConceptNameCodeSequence[0].CodeValue == "20355-4"]
    assert len(tr) == 1  # one TR Vmax
    written = float(tr[0].MeasuredValueSequence[0].NumericValue)
    # The neural value carries a qualification (outside_training_layout), the classical one
    # only how its beats were found: the classical value is reported, rounded to 1 cm/s.
    assert written == round(abs(classical.value))
    report = build_report([SourceClip(header, result)])
    (other,) = report.alternatives
    assert other.algorithm.name == neural.TR and other.value == round(abs(model.value))
    # The one not reported is the job record's, not the clinical document's.
    texts = " ".join(i.TextValue for i in _walk(sr.ContentSequence) if i.ValueType == "TEXT")
    assert neural.TR not in texts


@pytest.mark.peer
def test_new_doppler_concepts_are_written_with_their_sites(tmp_path: Path) -> None:
    header = source_header()
    values = {"MR_Vmax": -510.0, "LVOT_Vmax": 95.0, "e_lat": 12.0, "e_med": 8.0}
    result = analyze_free_result(header.SOPInstanceUID, values)
    sr = build_sr([SourceClip(header, result)], node=NODE)
    items = list(_walk(sr.ContentSequence))
    nums = {
        (
            i.ConceptNameCodeSequence[0].CodeValue,
            next(
                (
                    c.ConceptCodeSequence[0].CodeValue
                    for c in i.ContentSequence
                    if c.ConceptNameCodeSequence[0].CodeValue in ("363698007", "260674002")
                ),
                None,
            ),
        ): float(i.MeasuredValueSequence[0].NumericValue)
        for i in items
        if i.ValueType == "NUM"
    }
    assert nums == {
        ("20355-4", "397417004"): 510.0,  # MR: Peak Blood Velocity, regurgitant
        ("20355-4", "13418002"): 95.0,  # LVOT
        ("399133000", "399086000"): 12.0,  # e' lateral
        ("399133000", "399093001"): 8.0,  # e' medial
    }
    out = tmp_path / "sr.dcm"
    sr.save_as(out, enforce_file_format=True)
    assert dciodvfy(out)[0] == []


def analyze_free_result(uid: str, values: dict[str, float]) -> ClipResult:
    findings = tuple(
        Finding(name, value, "cm/s", PROVENANCE, (0,), ((100.0, 150.0),))
        for name, value in values.items()
    )
    return ClipResult(
        uid,
        ViewDecision(View.DOPPLER, "region:spectral", 1.0),
        (PipelineResult("doppler_neural", PipelineStatus.OK, findings),),
    )


def _walk(items: object) -> list[pydicom.Dataset]:
    found: list[pydicom.Dataset] = []
    for item in items or []:  # type: ignore[attr-defined]
        found.append(item)
        found.extend(_walk(item.get("ContentSequence")))
    return found
