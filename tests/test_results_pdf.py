"""The PDF report, read as a person reads it: poppler's pdftoppm renders its pages and pdftotext
extracts its text; the Encapsulated PDF instance validates with dciodvfy and round-trips.

Inputs are findings with known values: a 2D clip with hand-placed calipers, an A4C clip with a
known LV area curve, and the phantom's CW and PW Doppler clips measured by the classical engine
(its envelope and peaks are real, on real spectra).
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from ai.decode import load_clip
from ai.findings import ClipResult, Finding, PipelineResult, PipelineStatus, View, ViewDecision
from ai.phantom.study import generate_study
from ai.pipelines.doppler import measure
from echo_node.results.pdfcontent import NOTHING_REPORTED, ClipPictures, build_content
from echo_node.results.pdfdicom import ENCAPSULATED_PDF, build_encapsulated_pdf
from echo_node.results.pdflayout import render
from echo_node.results.report import Report, SourceClip, build_report
from tests.conftest import require_tool
from tests.test_results_data import MODEL, NODE, dciodvfy, plax_result, source_dataset
from tests.test_results_tid1500 import clean_header, plax

YELLOW = (255, 212, 0)  # pdfplots.CALIPER


@dataclasses.dataclass(frozen=True)
class Rendered:
    report: Report
    pdf: bytes
    pages: list[np.ndarray]  # RGB, one per page
    text: str  # pdftotext, whitespace collapsed


def _clip(
    path_or_dataset: object, result: ClipResult, keep: Sequence[int]
) -> tuple[ClipPictures, SourceClip]:
    clip = load_clip(path_or_dataset)  # type: ignore[arg-type]
    header = (
        pydicom.dcmread(path_or_dataset, stop_before_pixels=True)
        if isinstance(path_or_dataset, Path)
        else path_or_dataset
    )
    result = dataclasses.replace(result, sop_instance_uid=header.SOPInstanceUID)
    frames = {i: clip.frames[i] for i in keep}
    return ClipPictures(header, result, frames), SourceClip(header, result)


def _a4c(uid: str) -> ClipResult:
    area = tuple(30.0 - 8.0 * np.sin(np.pi * i / 15.0) ** 2 for i in range(30))
    series = {"LV_area_cm2": area, "ED_frames": (0.0, 15.0), "ES_frames": (7.0, 22.0)}
    ef = Finding("LVEF", 57.4, "%", MODEL, (0, 15), flags=("averaged_over_beats",))
    pipeline = PipelineResult("a4c", PipelineStatus.OK, (ef,), series=series)
    return ClipResult(uid, ViewDecision(View.A4C, "test", 1.0), (pipeline,), frame_count=30)


def _with_lvid_curve(result: ClipResult) -> ClipResult:
    frames = tuple(float(f) for f in range(0, 30, 2))
    lvid = tuple(4.3 + 0.5 * np.cos(2 * np.pi * (f - 3) / 10) for f in frames)
    (pipeline,) = result.pipelines
    series = {"frame": frames, "LVID_cm": lvid}
    return dataclasses.replace(result, pipelines=(dataclasses.replace(pipeline, series=series),))


def _doppler(path: Path) -> ClipResult:
    clip = load_clip(path)
    mode = "CW" if "tr" in path.stem else "PW"
    decision = ViewDecision(View.DOPPLER, "region:spectral", 1.0, doppler_mode=mode)
    return ClipResult(None, decision, (measure(clip),), frame_count=len(clip))


def pages_of(pdf: bytes, folder: Path) -> list[np.ndarray]:
    (folder / "report.pdf").write_bytes(pdf)
    subprocess.run(
        [
            require_tool("pdftoppm"),
            "-r",
            "100",
            "-png",
            str(folder / "report.pdf"),
            str(folder / "page"),
        ],
        check=True,
        timeout=120,
    )
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("page-*.png"))]


def text_of(pdf: bytes) -> str:
    proc = subprocess.run(
        [require_tool("pdftotext"), "-", "-"],
        input=pdf,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return re.sub(r"\s+", " ", proc.stdout.decode())


def _near(page: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(page.astype(int) - np.array(colour)).max(axis=2) <= tolerance).sum())


def _cyan(page: np.ndarray) -> int:
    """Blue-green pixels: the traced envelope (the spectrum is grey, the ECG green)."""
    r, g, b = (page[..., i].astype(int) for i in range(3))
    return int(((b - r > 80) & (g - r > 50) & (b > 150)).sum())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("pdf")
    phantom = folder / "phantom"
    generate_study(phantom, 2, rows=240, columns=320, cycles=1, frame_rate=15.0)
    sonosite = source_dataset()
    sonosite.PatientName = "DOE^JANE"
    clips = [
        _clip(sonosite, _with_lvid_curve(plax("")), (3, 13, 23)),
        _clip(phantom / "a4c.dcm", _a4c(""), ()),
        *(
            _clip(phantom / f"{n}.dcm", _doppler(phantom / f"{n}.dcm"), (0,))
            for n in ("tr_cw", "mv_pw")
        ),
    ]
    for pictures, _source in clips[1:]:  # one study: the phantom's clips join the SonoSite's
        pictures.header.StudyInstanceUID = sonosite.StudyInstanceUID
    report = build_report([source for _, source in clips])
    content = build_content(
        report, [p for p, _ in clips], software="9.9", created="2026-12-01 10:00"
    )
    pdf = render(content)
    return Rendered(report, pdf, pages_of(pdf, folder), text_of(pdf))


@pytest.mark.peer
def test_every_reported_and_calculated_value_reads_as_the_report_prints_it(
    rendered: Rendered,
) -> None:
    report = rendered.report
    keys = {v.key for v in report.values}
    assert {"IVSd", "LVIDd", "LVEF", "TR_Vmax", "MV_E", "MV_A"} <= keys
    for value in (*report.values, *report.derived):
        assert value.display in rendered.text, value.display
        assert value.label in rendered.text, value.label
    assert "LVEF 57 %" in rendered.text  # 57.4 rounded once, as the SR writes it
    assert report.derived
    for derived in report.derived:  # the formula of each calculated value, as the SR states it
        assert derived.formula in rendered.text, derived.formula
    assert "DOE JANE" in rendered.text  # whose report it is, on every page's footer too
    assert "not verified by a physician" in rendered.text


@pytest.mark.peer
def test_the_conventions_say_how_each_value_was_obtained(rendered: Rendered) -> None:
    tr = rendered.report.value("TR_Vmax")
    assert tr is not None and len(tr.beats) >= 2  # type: ignore[union-attr]
    assert f"highest of {len(tr.beats)} beats, CW Doppler" in rendered.text  # type: ignore[union-attr]
    assert "median of 3 beats, at end-diastole, 2D" in rendered.text  # LVIDd
    assert "one beat, 2D" in rendered.text  # IVSd: a single caliper
    assert "in diastole, PW Doppler" in rendered.text  # E and A: inflow, not end-diastole


@pytest.mark.peer
def test_pages_show_the_calipers_the_curve_and_the_spectra(rendered: Rendered) -> None:
    pages = rendered.pages
    assert 2 <= len(pages) <= 4
    for page in pages:
        ink = (page.min(axis=2) < 200).mean()
        assert ink > 0.02, ink  # not blank
    # Calipers (yellow) on the 2D frames and the traced envelope (cyan) on both spectra.
    assert sum(_near(p, YELLOW) for p in pages) > 50
    assert sorted(_cyan(p) > 1000 for p in pages).count(True) == 2  # both spectra
    # One picture each: the frame with calipers, the LVID and LV area curves, 2 spectra.
    images = subprocess.run(
        [require_tool("pdfimages"), "-list", "-"],
        input=rendered.pdf,
        capture_output=True,
        check=True,
        timeout=60,
    )
    rows = [line.split() for line in images.stdout.decode().splitlines()[2:]]
    listed = [row for row in rows if row[2] == "image"]  # not their alpha masks
    assert len(listed) == 5, images.stdout.decode()
    assert "LV area over the clip" in rendered.text
    assert "LV internal dimension over the clip" in rendered.text
    # LVIDd drawn on its median beat's frame, with IVSd measured on the same frame.
    assert "frame 14: IVSd 1.05 cm, LVIDd 4.81 cm" in rendered.text


def test_fused_waves_a_withheld_and_e_qualified(tmp_path: Path) -> None:
    generate_study(tmp_path, 5, rows=240, columns=320, cycles=1, frame_rate=15.0)
    pictures, source = _clip(tmp_path / "mv_pw.dcm", _doppler(tmp_path / "mv_pw.dcm"), (0,))
    report = build_report([source])
    assert [v.key for v in report.values] == ["MV_E"]
    text = text_of(render(build_content(report, [pictures], software="9.9", created="now")))
    assert "E and A waves are fused." in text  # beside the E it qualifies
    assert "Mitral Valve A-Wave Peak Velocity not reported: E and A waves are fused." in text
    assert "Mitral Valve E to A Ratio not calculated: A not reported." in text


@pytest.mark.peer
def test_a_report_with_no_value_says_why(tmp_path: Path) -> None:
    header = clean_header()
    result = dataclasses.replace(
        plax_result(header.SOPInstanceUID),
        pipelines=tuple(
            dataclasses.replace(
                p,
                findings=tuple(
                    dataclasses.replace(f, flags=("outside_physiological_range",))
                    for f in p.findings
                ),
            )
            for p in plax_result("").pipelines
        ),
    )
    report = build_report([SourceClip(header, result)])
    assert not report.values
    pdf = render(
        build_content(report, [ClipPictures(header, result)], software="9.9", created="now")
    )
    text = text_of(pdf)
    assert NOTHING_REPORTED in text
    for note in report.notes:
        assert note in text, note
    (page,) = pages_of(pdf, tmp_path)
    assert (page.min(axis=2) < 200).mean() > 0.005


@pytest.mark.peer
def test_encapsulated_pdf_is_valid_and_round_trips(rendered: Rendered, tmp_path: Path) -> None:
    header = clean_header()
    for pdf in (rendered.pdf, rendered.pdf + b"\n"):  # an even and an odd length
        dataset = build_encapsulated_pdf(pdf, [header], node=NODE)
        path = tmp_path / "pdf.dcm"
        dataset.save_as(path, enforce_file_format=True)
        assert dciodvfy(path) == ([], [])
        back = pydicom.dcmread(path)
        assert back.SOPClassUID == ENCAPSULATED_PDF and back.Modality == "DOC"
        assert back.MIMETypeOfEncapsulatedDocument == "application/pdf"
        assert back.EncapsulatedDocument[: back.EncapsulatedDocumentLength] == pdf
        assert back.StudyInstanceUID == header.StudyInstanceUID
        assert back.PatientName == header.PatientName
        assert back.SourceInstanceSequence[0].ReferencedSOPInstanceUID == header.SOPInstanceUID
        assert back.BurnedInAnnotation == "YES"  # the pages name the patient


def test_not_a_pdf_is_refused() -> None:
    with pytest.raises(ValueError, match="pdf"):
        build_encapsulated_pdf(b"<html>", [clean_header()], node=NODE)
    with pytest.raises(ValueError, match="sources"):
        build_encapsulated_pdf(b"%PDF-1.4", [], node=NODE)


@pytest.mark.peer
def test_pages_render_identically_from_the_stored_bytes(rendered: Rendered) -> None:
    """What poppler reads from the instance is what was rendered: nothing lost in encapsulation."""
    dataset = build_encapsulated_pdf(rendered.pdf, [clean_header()], node=NODE)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert text_of(back.EncapsulatedDocument[: back.EncapsulatedDocumentLength]) == rendered.text
