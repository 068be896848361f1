"""The classical Doppler engine on synthetic spectra (known peaks), the phantom, and real files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from ai.decode import load_clip
from ai.findings import Aggregation, PipelineStatus
from ai.pipelines.doppler import measure


def sample(name: str) -> Path:
    """A file of pydicom's bundled examples or pydicom-data."""
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing: is pydicom-data installed?"
    return Path(path)


SECONDS_PER_COLUMN = 0.006
STRIP_TOP, STRIP_BOTTOM, STRIP_LEFT, STRIP_RIGHT = 210, 389, 20, 479


@dataclass(frozen=True)
class Spectrum:
    """Ground truth of a synthetic spectral image: one peak per beat, signed, in cm/s."""

    mode: str  # "CW" or "PW"
    rr_s: float
    peaks: dict[str, list[float]]  # "TR" or "E"/"A" → per complete beat


def _tr_velocity(
    t: npt.NDArray[np.float64], rr: float, vmax: float, jet_s: float = 0.42
) -> npt.NDArray[np.float64]:
    """Holosystolic TR jet: rounded, from 0.03 s after R for 0.42 s, below the baseline."""
    phase = np.mod(t, rr)
    u = np.clip((phase - 0.03) / jet_s, 0, 1)
    return -vmax * np.sin(np.pi * u) ** 0.7


def _mv_velocity(
    t: npt.NDArray[np.float64], rr: float, e: float, a: float
) -> npt.NDArray[np.float64]:
    """Mitral inflow toward the transducer: E after isovolumic relaxation, A before the R wave."""
    phase = np.mod(t, rr)
    e_start = 0.38 * rr + 0.08
    ue = np.clip((phase - e_start) / 0.2, 0, 1)
    ua = np.clip((phase - (rr - 0.14)) / 0.13, 0, 1)
    return e * np.sin(np.pi * ue) + a * np.sin(np.pi * ua)


def synthetic_doppler(
    mode: str = "CW",
    rr_s: float = 0.8,
    tr_vmax: float = 320.0,
    e: float = 90.0,
    a: float = 60.0,
    ecg: bool = False,
    seed: int = 0,
    description: str = "",
    jet_s: float = 0.42,
) -> tuple[Dataset, Spectrum]:
    """A 400×500 RGB US image: a grey 2D area on top and a spectral strip with speckle, a bright
    baseline line, scale text blobs and optionally a green ECG trace, calibrated by its regions."""
    rng = np.random.default_rng(seed)
    rows, columns = 400, 500
    image = rng.gamma(2.0, 6.0, size=(rows, columns)).clip(0, 255)
    image[:200] += 60 * rng.random((200, columns))
    if mode == "CW":
        baseline_offset, delta_y = 40, -3.5  # below: 139 px × 3.5 cm/s
    else:
        baseline_offset, delta_y = 150, -0.9  # above: 150 px × 0.9 cm/s
    baseline = STRIP_TOP + baseline_offset
    width = STRIP_RIGHT - STRIP_LEFT + 1
    t = np.arange(width) * SECONDS_PER_COLUMN + 0.3  # the sweep starts mid-beat
    velocity = (
        _tr_velocity(t, rr_s, tr_vmax, jet_s) if mode == "CW" else _mv_velocity(t, rr_s, e, a)
    )
    for i, v in enumerate(velocity):
        reach = abs(v) / abs(delta_y)
        if reach < 1:
            continue
        direction = 1 if v / delta_y > 0 else -1  # rows grow downward
        span = np.arange(3, round(reach) + 1)
        fade = 1.0 - 0.5 * (span / reach) ** 4  # dimmer toward the envelope, as real spectra
        values = (110 + 110 * rng.random(span.size)) * fade
        image[baseline + direction * span, STRIP_LEFT + i] = values
    image[baseline, STRIP_LEFT : STRIP_RIGHT + 1] = 230  # the baseline line
    speckle = rng.random((rows, columns)) < 0.002
    image[speckle] = 255
    for k in range(4):  # velocity scale labels inside the strip
        y = STRIP_TOP + 10 + 40 * k
        image[y : y + 7, STRIP_RIGHT - 12 : STRIP_RIGHT - 7] = 240
    rgb = np.repeat(image.astype(np.uint8)[..., None], 3, axis=2)
    if ecg:
        trace_row = np.full(width, STRIP_BOTTOM - 8.0)
        phase = np.mod(t, rr_s)
        trace_row -= 25 * np.exp(-(((phase - 0.0) / 0.012) ** 2))
        trace_row -= 25 * np.exp(-(((phase - rr_s) / 0.012) ** 2))
        for i, y in enumerate(trace_row.astype(int)):
            rgb[y : y + 2, STRIP_LEFT + i] = (40, 230, 60)
    ds = _dataset(rgb, mode, baseline_offset, delta_y, description)
    beats = _complete_beats(t, rr_s, mode, ecg)
    truth = {"TR": [-tr_vmax] * beats} if mode == "CW" else {"E": [e] * beats, "A": [a] * beats}
    return ds, Spectrum(mode=mode, rr_s=rr_s, peaks=truth)


def _complete_beats(t: npt.NDArray[np.float64], rr: float, mode: str, ecg: bool) -> int:
    """Beats the engine can measure: whole R–R intervals with an ECG, else whole flow windows."""
    if ecg:
        return int(np.floor(t[-1] / rr) - np.ceil(t[0] / rr))
    start, stop = (0.03, 0.45) if mode == "CW" else (0.38 * rr + 0.08, rr - 0.01)
    return sum(
        1 for k in range(-1, int(t[-1] / rr) + 1) if k * rr + start > t[0] and k * rr + stop < t[-1]
    )


def _dataset(
    rgb: npt.NDArray[np.uint8], mode: str, baseline_offset: int, delta_y: float, description: str
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "US"
    if description:
        ds.SeriesDescription = description
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    tissue = Dataset()
    for name, value in {
        "RegionSpatialFormat": 1,
        "RegionDataType": 1,
        "RegionFlags": 0,
        "RegionLocationMinX0": 0,
        "RegionLocationMinY0": 0,
        "RegionLocationMaxX1": 499,
        "RegionLocationMaxY1": 199,
        "PhysicalUnitsXDirection": 3,
        "PhysicalUnitsYDirection": 3,
        "PhysicalDeltaX": 0.05,
        "PhysicalDeltaY": 0.05,
    }.items():
        setattr(tissue, name, value)
    spectral = Dataset()
    for name, value in {
        "RegionSpatialFormat": 3,
        "RegionDataType": 4 if mode == "CW" else 3,
        "RegionFlags": 0,
        "RegionLocationMinX0": STRIP_LEFT,
        "RegionLocationMinY0": STRIP_TOP,
        "RegionLocationMaxX1": STRIP_RIGHT,
        "RegionLocationMaxY1": STRIP_BOTTOM + 30,  # past the last row, as real files do
        "PhysicalUnitsXDirection": 4,
        "PhysicalUnitsYDirection": 7,
        "PhysicalDeltaX": SECONDS_PER_COLUMN,
        "PhysicalDeltaY": delta_y,
        "ReferencePixelX0": 0,
        "ReferencePixelY0": baseline_offset,
    }.items():
        setattr(spectral, name, value)
    ds.SequenceOfUltrasoundRegions = [tissue, spectral]
    return ds


def _within(value: float, truth: float, tolerance: float = 0.05) -> bool:
    return abs(value - truth) <= tolerance * abs(truth)


@pytest.mark.parametrize(("vmax", "rr", "ecg"), [(320.0, 0.8, False), (230.0, 0.65, True)])
def test_tr_vmax_from_cw_below_the_baseline(vmax: float, rr: float, ecg: bool) -> None:
    ds, truth = synthetic_doppler("CW", rr_s=rr, tr_vmax=vmax, ecg=ecg)
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.OK, result.message
    (finding,) = result.findings
    assert finding.name == "TR_Vmax" and finding.unit == "cm/s"
    assert finding.value < 0  # below the baseline with a negative PhysicalDeltaY: away
    assert _within(finding.value, truth.peaks["TR"][0]), finding
    assert len(finding.points) == len(truth.peaks["TR"])
    assert finding.spread is not None and _within(finding.spread[0], -vmax)
    assert ("beats_from_ecg" in finding.flags) == ecg
    # ASE: a jet's peak is the fastest beat; each beat keeps its value, frame and peak pixel.
    assert finding.aggregation is Aggregation.MAX
    assert finding.value == max((b.value for b in finding.beats), key=abs)
    assert [b.points[0] for b in finding.beats] == list(finding.points)
    for x, y in finding.points:  # source pixels inside the strip, below the baseline
        assert STRIP_LEFT <= x <= STRIP_RIGHT and STRIP_TOP + 40 < y <= STRIP_BOTTOM


@pytest.mark.parametrize(
    ("e", "a", "rr", "ecg"), [(90.0, 60.0, 0.9, False), (55.0, 80.0, 0.75, True)]
)
def test_mitral_e_and_a_from_pw(e: float, a: float, rr: float, ecg: bool) -> None:
    ds, truth = synthetic_doppler("PW", rr_s=rr, e=e, a=a, ecg=ecg)
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.OK, result.message
    found = {f.name: f for f in result.findings}
    assert set(found) == {"MV_E", "MV_A", "MV_E_A"}
    assert found["MV_E"].value > 0 and found["MV_A"].value > 0  # toward the transducer
    assert _within(found["MV_E"].value, e), found["MV_E"]
    assert _within(found["MV_A"].value, a), found["MV_A"]
    assert _within(found["MV_E_A"].value, e / a, 0.08)
    assert found["MV_E_A"].unit == "1"
    # ASE: E and A are the means of the beats; E/A is the ratio of those means.
    for name in ("MV_E", "MV_A"):
        assert found[name].aggregation is Aggregation.MEAN
        assert found[name].value == pytest.approx(np.mean([b.value for b in found[name].beats]))
    assert found["MV_E_A"].aggregation is Aggregation.RATIO
    assert found["MV_E_A"].value == pytest.approx(found["MV_E"].value / found["MV_A"].value)
    assert len(found["MV_E"].points) == len(truth.peaks["E"])
    # E comes before A in every beat.
    for (xe, _), (xa, _) in zip(found["MV_E"].points, found["MV_A"].points, strict=True):
        assert xe < xa


def test_keyword_decides_av_over_shape() -> None:
    ds, _ = synthetic_doppler("CW", description="CW AV apical 5ch")
    (finding,) = measure(load_clip(ds)).findings
    assert finding.name == "AV_Vmax" and "flow_identified_by_shape" not in finding.flags


def test_short_ejection_is_taken_for_aortic_flow() -> None:
    """No keyword: a jet lasting a third of the beat is ejection (AV), not a holosystolic TR."""
    ds, _ = synthetic_doppler("CW", rr_s=0.9, tr_vmax=150.0, jet_s=0.28)
    (finding,) = measure(load_clip(ds)).findings
    assert finding.name == "AV_Vmax" and "flow_identified_by_shape" in finding.flags
    assert _within(finding.value, -150.0)


def test_pw_direction_comes_from_the_calibration() -> None:
    """The same picture is mitral inflow when the scale says "toward" and is refused when an
    inverted scale (positive PhysicalDeltaY) says the flow drawn on top runs away."""
    ds, _ = synthetic_doppler("PW", e=80.0, a=50.0)
    assert measure(load_clip(ds)).status == PipelineStatus.OK
    ds.SequenceOfUltrasoundRegions[1].PhysicalDeltaY = 0.9
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.NOT_APPLICABLE
    assert "not recognised as mitral inflow" in result.message


def test_inverted_display_mitral_below_the_baseline() -> None:
    """Inverted display: inflow drawn below the baseline, PhysicalDeltaY positive."""
    ds, _ = synthetic_doppler("PW", e=80.0, a=50.0)
    rgb = load_clip(ds).frames[0].copy()
    baseline = STRIP_TOP + 150
    strip = rgb[STRIP_TOP : baseline + 1]
    height = strip.shape[0]
    rgb[STRIP_TOP : STRIP_TOP + height] = strip[::-1]  # baseline now at the strip top
    ds.PixelData = rgb.tobytes()
    region = ds.SequenceOfUltrasoundRegions[1]
    region.ReferencePixelY0, region.PhysicalDeltaY = 0, 0.9
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.OK, result.message
    found = {f.name: f for f in result.findings}
    assert _within(found["MV_E"].value, 80.0) and _within(found["MV_A"].value, 50.0)


def test_missing_baseline_is_refused() -> None:
    ds, _ = synthetic_doppler("CW")
    del ds.SequenceOfUltrasoundRegions[1].ReferencePixelY0
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.NOT_APPLICABLE and "ReferencePixelY0" in result.message


def test_frequency_scale_is_refused() -> None:
    ds, _ = synthetic_doppler("CW")
    ds.SequenceOfUltrasoundRegions[1].RegionFlags = 0b100
    result = measure(load_clip(ds))
    assert result.status == PipelineStatus.NOT_APPLICABLE
    assert "frequency" in result.message and not result.findings


@pytest.mark.parametrize(
    "name", ["examples_ybr_color.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "US1_UNCR.dcm"]
)
def test_real_files_without_a_spectral_region_are_refused(name: str) -> None:
    """No file of pydicom or pydicom-data holds a spectral region (test_regions checks every
    one); the engine refuses them rather than measuring a 2D image."""
    result = measure(load_clip(sample(name)))
    assert result.status == PipelineStatus.NOT_APPLICABLE
    assert "no spectral Doppler region" in result.message
    assert not result.findings


def test_written_file_round_trip(tmp_path: Path) -> None:
    ds, truth = synthetic_doppler("CW", tr_vmax=400.0, seed=3)
    path = tmp_path / "cw.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = measure(load_clip(pydicom.dcmread(path)))
    (finding,) = result.findings
    assert _within(finding.value, truth.peaks["TR"][0])


# --- the phantom (ai.phantom): per-beat ground truth written beside each file ----------------


@pytest.fixture(scope="module", params=[11, 12])
def phantom(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ai.phantom import generate_study

    out = tmp_path_factory.mktemp(f"phantom{request.param}")
    # 60/min keeps E and A apart: with fused waves the phantom's A truth is the largest
    # envelope sample in the A window, which may be the E wave's tail.
    generate_study(
        out, request.param, rows=300, columns=400, cycles=1, frame_rate=20, heart_rate_bpm=60
    )
    return out


def _matched_truth(
    points: tuple[tuple[float, float], ...], beats: list[dict[str, float]]
) -> list[float]:
    """The true peak of the beat nearest each measured peak (by image column)."""
    return [
        min(beats, key=lambda b: abs(b["peak_column"] - x))["peak_velocity_cm_s"] for x, _ in points
    ]


def test_phantom_tr_cw(phantom: Path) -> None:
    truth = json.loads((phantom / "tr_cw.json").read_text())
    result = measure(load_clip(phantom / "tr_cw.dcm"))
    assert result.status == PipelineStatus.OK, result.message
    (finding,) = result.findings
    assert finding.name == "TR_Vmax" and finding.value < 0
    beats = [b["TR"] for b in truth["beats"]]
    expected = _matched_truth(finding.points, beats)
    assert len(expected) >= 2
    assert _within(finding.value, max(expected, key=abs)), (finding, expected)
    # The phantom states TR Vmax in m/s; ours is cm/s with the display's sign.
    assert _within(abs(finding.value) / 100, truth["expected"]["TR_Vmax"]["value"], 0.08)
    for (x, y), beat in zip(
        finding.points,
        [min(beats, key=lambda b: abs(b["peak_column"] - p[0])) for p in finding.points],
        strict=True,
    ):
        assert abs(x - beat["peak_column"]) <= 6 and abs(y - beat["peak_row"]) <= 3


def test_phantom_mv_pw(phantom: Path) -> None:
    truth = json.loads((phantom / "mv_pw.json").read_text())
    result = measure(load_clip(phantom / "mv_pw.dcm"))
    assert result.status == PipelineStatus.OK, result.message
    found = {f.name: f for f in result.findings}
    for name, key in (("MV_E", "E"), ("MV_A", "A")):
        finding = found[name]
        assert finding.value > 0  # above the baseline: toward the transducer
        expected = _matched_truth(finding.points, [b[key] for b in truth["beats"]])
        assert _within(finding.value, float(np.mean(expected))), (finding, expected)
    ratio = truth["expected"]["MV_E_A"]["value"]
    assert _within(found["MV_E_A"].value, ratio, 0.08)


def test_phantom_without_its_ecg_uses_envelope_gaps(phantom: Path) -> None:
    """The phantom's strips with the ECG trace painted out: beats from the gaps in the flow."""
    for name, key, finding_name in (("tr_cw", "TR", "TR_Vmax"), ("mv_pw", "E", "MV_E")):
        truth = json.loads((phantom / f"{name}.json").read_text())
        ds = pydicom.dcmread(phantom / f"{name}.dcm")
        rgb = load_clip(ds).frames[0].copy()
        top, bottom = truth["ecg"]["rows"]
        rgb[top : bottom + 1] = 0
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
        ds.PixelData = rgb.tobytes()
        result = measure(load_clip(ds))
        found = {f.name: f for f in result.findings}
        finding = found[finding_name]
        assert "beats_from_envelope_gaps" in finding.flags
        expected = _matched_truth(finding.points, [b[key] for b in truth["beats"]])
        combined = max(expected, key=abs) if key == "TR" else float(np.mean(expected))
        assert _within(finding.value, combined), (finding, expected)
