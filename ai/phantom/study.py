"""One phantom study: PLAX and A4C clips, TR CW and mitral PW Doppler, each with its truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.uid import generate_uid

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.phantom.clips import make_a4c, make_plax
from ai.phantom.dicom import MODE_2D, MODE_CW, MODE_PW, InstanceSpec, StudyHeader, write_instance
from ai.phantom.doppler import make_doppler
from ai.phantom.physiology import Patient, cine_timing, sample_patient

logger = logging.getLogger(__name__)

# pydicom's root for generated UIDs; pass your organisation's root in production.
DEFAULT_UID_ROOT = "1.2.826.0.1.3680043.8.498."
SCHEMA = "echo-node-phantom/1"
CLIP_NAMES = ("plax", "a4c", "tr_cw", "mv_pw")


def generate_study(
    out_dir: Path,
    seed: int,
    *,
    heart_rate_bpm: float | None = None,
    compressed: bool = True,
    rows: int = 600,
    columns: int = 800,
    uid_root: str = DEFAULT_UID_ROOT,
    view_codes: bool = False,
    cycles: int = 2,
    frame_rate: float = 50.0,
) -> list[Path]:
    """Write plax.dcm, a4c.dcm, tr_cw.dcm, mv_pw.dcm (+ NAME.json each) into out_dir.

    Everything (anatomy, speckle, UIDs, dates) follows from `seed`: the same seed gives the
    same files. Patient "PHANTOM^ECHO^<seed>". Returns the DICOM paths in that order.
    """
    if not uid_root.endswith("."):
        uid_root += "."
    header = study_header(seed, uid_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, name in enumerate(CLIP_NAMES, start=1):
        clip = make_clip(
            name,
            seed,
            heart_rate_bpm=heart_rate_bpm,
            rows=rows,
            columns=columns,
            cycles=cycles,
            frame_rate=frame_rate,
        )
        spec = InstanceSpec(
            sop_instance_uid=str(generate_uid(uid_root, [str(seed), name])),
            instance_number=number,
            series_description=name.upper().replace("_", " "),
            modes=clip.modes,
            regions=clip.regions,
            frame_time_ms=clip.frame_time_ms,
            heart_rate_bpm=clip.patient.heart_rate_bpm,
            view=name if view_codes and clip.frame_time_ms is not None else None,
        )
        paths.append(write_clip(out_dir / f"{name}.dcm", clip, header, spec, seed, compressed))
    return paths


def write_clip(
    path: Path,
    clip: RenderedClip,
    header: StudyHeader,
    spec: InstanceSpec,
    seed: int,
    compressed: bool,
) -> Path:
    """One rendered clip as path (DICOM) and its truth beside it (path with .json)."""
    frames, truth = clip.frames, clip.truth
    write_instance(path, frames, header, spec, compressed)
    document = {
        "schema": SCHEMA,
        "clip": clip.name,
        "file": path.name,
        "seed": seed,
        "sop_instance_uid": spec.sop_instance_uid,
        "study_instance_uid": header.study_instance_uid,
        "series_instance_uid": header.series_instance_uid,
        "series_description": spec.series_description,
        "rows": int(frames.shape[1]),
        "columns": int(frames.shape[2]),
        "number_of_frames": int(frames.shape[0]),
        "frame_time_ms": clip.frame_time_ms,
        "heart_rate_bpm": clip.patient.heart_rate_bpm,
        "compressed": compressed,
        "regions": [dataclasses.asdict(r) for r in clip.regions],
        **truth,
        "expected": _expected(clip.name, clip.patient, truth),
    }
    path.with_suffix(".json").write_text(json.dumps(document, indent=1))
    logger.info("phantom %s written", clip.name, extra={"sop_instance_uid": spec.sop_instance_uid})
    return path


@dataclass(frozen=True)
class RenderedClip:
    """One clip before it is written: pixels, regions, truth (and labels for 2D clips)."""

    name: str
    patient: Patient
    frames: npt.NDArray[np.uint8]  # (n, rows, columns) grey or (1, rows, columns, 3) RGB
    labels: npt.NDArray[np.uint8] | None  # (n, rows, columns) Label values, 2D clips only
    regions: tuple[UltrasoundRegion, ...]
    truth: dict[str, Any]
    frame_time_ms: float | None  # None for the single-frame Doppler images
    modes: int

    def to_clip(self) -> Clip:
        """The clip as ai/ sees a decoded instance (RGB frames), without writing DICOM."""
        rgb = self.frames if self.frames.ndim == 4 else np.repeat(self.frames[..., None], 3, 3)
        r_waves = self.truth.get("r_wave_times_s")
        if r_waves is None:  # Doppler: the R waves of the ECG under the spectrum
            r_waves = self.truth["ecg"]["r_wave_times_s"]
        return Clip(
            frames=ArrayFrames(rgb),
            rows=int(rgb.shape[1]),
            columns=int(rgb.shape[2]),
            regions=self.regions,
            frame_time_ms=self.frame_time_ms,
            heart_rate_bpm=self.patient.heart_rate_bpm,
            r_wave_times_ms=tuple(1000.0 * t for t in r_waves),
            metadata={"phantom_clip": self.name},
        )


def make_clip(
    name: str,
    seed: int,
    *,
    heart_rate_bpm: float | None = None,
    rows: int = 600,
    columns: int = 800,
    cycles: int = 2,
    frame_rate: float = 50.0,
    variant: int = 0,
) -> RenderedClip:
    """Render one of CLIP_NAMES exactly as generate_study does for the same arguments.

    variant > 0 draws another acquisition of the same patient (its own speckle and noise), as
    the several clips of one view in an exam (ai.phantom.exam)."""
    if name not in CLIP_NAMES:
        raise ValueError(f"name must be one of {CLIP_NAMES}, got {name!r}")
    if rows < 120 or columns < 160:
        raise ValueError(f"image must be at least 120×160, got {rows}×{columns}")
    patient = sample_patient(np.random.default_rng(seed), heart_rate_bpm)
    timing = cine_timing(patient.heart_rate_bpm, frame_rate, cycles)
    # Each clip has its own stream, so one clip's draws never shift another's.
    stream = [seed, CLIP_NAMES.index(name) + 1] + ([variant] if variant else [])
    rng = np.random.default_rng(stream)
    if name in ("plax", "a4c"):
        cine = (make_plax if name == "plax" else make_a4c)(patient, timing, rows, columns, rng)
        truth = {
            **cine.truth,
            "ed_frames": timing.ed_frames(),
            "es_frames": timing.es_frames(),
            "r_wave_times_s": [i * timing.frame_time_s for i in timing.ed_frames()],
        }
        return RenderedClip(
            name=name,
            patient=patient,
            frames=cine.frames,
            labels=cine.labels,
            regions=(cine.region,),
            truth=truth,
            frame_time_ms=timing.frame_time_s * 1000.0,
            modes=MODE_2D,
        )
    kind = "TR" if name == "tr_cw" else "MV"
    doppler = make_doppler(patient, kind, rows, columns, rng)
    truth = {**doppler.truth, "view": "doppler", "spectral_region_index": 1}
    modes = MODE_2D | (MODE_CW if kind == "TR" else MODE_PW)
    return RenderedClip(
        name=name,
        patient=patient,
        frames=doppler.pixels[None],
        labels=None,
        regions=doppler.regions,
        truth=truth,
        frame_time_ms=None,
        modes=modes,
    )


_EXPECTED_BY_CLIP = {
    "plax": ("IVSd", "LVIDd", "LVPWd", "LVIDs"),
    "a4c": ("LVEDV", "LVESV", "LVEF"),
    "tr_cw": ("TR_Vmax",),
    "mv_pw": ("MV_E", "MV_A", "MV_E_A"),
}


def _expected(name: str, patient: Patient, truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The answers for one clip, under the names ai.findings uses, with UCUM units.

    Doppler answers are what the image shows: TR Vmax is the highest drawn beat (as
    echocardiographers report it), E and A the means over the drawn beats.
    """
    values = _patient_values(patient)
    beats = truth.get("beats", [])
    if name == "tr_cw" and beats:
        peak = max(-b["TR"]["peak_velocity_cm_s"] for b in beats)
        values["TR_Vmax"] = {"value": peak / 100.0, "unit": "m/s"}
    if name == "mv_pw" and beats:
        e = float(np.mean([b["E"]["peak_velocity_cm_s"] for b in beats]))
        a = float(np.mean([b["A"]["peak_velocity_cm_s"] for b in beats]))
        values["MV_E"] = {"value": e, "unit": "cm/s"}
        values["MV_A"] = {"value": a, "unit": "cm/s"}
        values["MV_E_A"] = {"value": e / a, "unit": "1"}
    return {k: v for k, v in values.items() if k in _EXPECTED_BY_CLIP[name]}


def _patient_values(patient: Patient) -> dict[str, dict[str, Any]]:
    return {
        "IVSd": {"value": patient.ivsd_cm, "unit": "cm"},
        "LVIDd": {"value": patient.lvidd_cm, "unit": "cm"},
        "LVPWd": {"value": patient.lvpwd_cm, "unit": "cm"},
        "LVIDs": {"value": patient.lvids_cm, "unit": "cm"},
        "LVEDV": {"value": patient.edv_ml, "unit": "ml"},
        "LVESV": {"value": patient.esv_ml, "unit": "ml"},
        "LVEF": {"value": patient.ef_percent, "unit": "%"},
        "TR_Vmax": {"value": patient.tr_vmax_cm_s / 100.0, "unit": "m/s"},
        "MV_E": {"value": patient.mv_e_cm_s, "unit": "cm/s"},
        "MV_A": {"value": patient.mv_a_cm_s, "unit": "cm/s"},
        "MV_E_A": {"value": patient.mv_e_cm_s / patient.mv_a_cm_s, "unit": "1"},
    }


def study_header(seed: int, uid_root: str) -> StudyHeader:
    day = dt.date(2025, 1, 1) + dt.timedelta(days=seed % 365)
    seconds = 8 * 3600 + (seed * 7919) % (9 * 3600)
    return StudyHeader(
        patient_name=f"PHANTOM^ECHO^{seed}",
        patient_id=f"PHANTOM-{seed}",
        study_instance_uid=str(generate_uid(uid_root, [str(seed), "study"])),
        series_instance_uid=str(generate_uid(uid_root, [str(seed), "series"])),
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        accession_number=f"PH{seed % 10**14:014d}",
        study_id=str(seed % 10**16)[:16],
    )


def region_of(document: dict[str, Any], index: int) -> UltrasoundRegion:
    """A region of a ground-truth JSON document as the shared dataclass."""
    return UltrasoundRegion(**document["regions"][index])
