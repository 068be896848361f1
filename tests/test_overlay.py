"""Overlays read from their pixels: the legend off the anatomy, calipers through their beats,
the report's values printed exactly, the thumbnail frame on calipers, dciodvfy clean.

A phantom study (PLAX and A4C cine loops, TR CW and mitral PW Doppler) with findings built
from its ground truth (tests/phantom_findings.py), so every kind of label and caliper is drawn.
The SCs are written uncompressed and read back, so a pixel is exactly what was drawn.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import itertools
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from ai.decode import load_clip
from ai.findings import ClipResult
from ai.phantom.study import generate_study
from ai.sector import sector_mask
from echo_node.results import build_overlay_sc, build_sr, plan_for, render_for
from echo_node.results.draw import Rendering, text_patch, text_size
from echo_node.results.overlay import DISCLAIMER, NOTE, PALETTE, TEXT, TITLE, shorten
from echo_node.results.report import Report, SourceClip, build_report
from tests.conftest import DCMTK_ENV, require_tool
from tests.orthanc import orthanc_factory  # noqa: F401
from tests.phantom_findings import a4c_result, doppler_result, plax_result, truth
from tests.test_results_data import NODE, dciodvfy, walk

CLIPS = ("plax", "a4c", "tr_cw", "mv_pw")
QUALIFIED = {"LVIDs": ("partial_beats",), "MV_E": ("flow_identified_by_shape",)}


@dataclass
class Clip:
    name: str
    path: Path
    header: Dataset
    frames: npt.NDArray[np.uint8]
    result: ClipResult
    doc: dict[str, Any]


@dataclass
class Study:
    phantom: Path
    clips: dict[str, Clip]
    report: Report
    renderings: dict[str, Rendering]
    back: dict[str, Dataset]  # the SCs as written and read back


def _results(phantom: Path, flags: dict[str, tuple[str, ...]]) -> dict[str, ClipResult]:
    return {
        "plax": plax_result(truth(phantom, "plax"), flags),
        "a4c": a4c_result(truth(phantom, "a4c")),
        "tr_cw": doppler_result(truth(phantom, "tr_cw"), flags),
        "mv_pw": doppler_result(truth(phantom, "mv_pw"), flags),
    }


def _report(clips: dict[str, Clip], results: dict[str, ClipResult]) -> Report:
    return build_report([SourceClip(clips[n].header, results[n]) for n in clips])


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    root = tmp_path_factory.mktemp("overlay")
    phantom = root / "phantom"
    # 80/min at 20 frames/s: 15 frames a beat, two beats and the first frame of a third.
    generate_study(phantom, 5, heart_rate_bpm=80.0, rows=480, columns=640, frame_rate=20.0)
    results = _results(phantom, QUALIFIED)
    clips = {}
    for name in CLIPS:
        path = phantom / f"{name}.dcm"
        decoded = load_clip(path)
        frames = np.stack([decoded.frames[i] for i in range(len(decoded))])
        header = pydicom.dcmread(path, stop_before_pixels=True)
        clips[name] = Clip(name, path, header, frames, results[name], truth(phantom, name))
    report = _report(clips, results)
    renderings, back = {}, {}
    for name, clip in clips.items():
        plan = plan_for(clip.header, report, frame_time_ms=clip.doc["frame_time_ms"])
        renderings[name] = render_for(clip.header, clip.frames, plan)
        sc = build_overlay_sc(
            clip.header, renderings[name], node=NODE, transfer_syntax=ExplicitVRLittleEndian
        )
        sc.save_as(root / f"{name}-sc.dcm", enforce_file_format=True)
        back[name] = pydicom.dcmread(root / f"{name}-sc.dcm")
    return Study(phantom, clips, report, renderings, back)


def _pixels(ds: Dataset) -> npt.NDArray[np.uint8]:
    pixels = ds.pixel_array
    return pixels if pixels.ndim == 4 else pixels[None]


def _padded(frames: npt.NDArray[np.uint8], columns: int) -> npt.NDArray[np.uint8]:
    """The source frames on the SC's canvas (black where the canvas was widened)."""
    out = np.zeros((*frames.shape[:2], columns, 3), dtype=np.uint8)
    out[:, :, : frames.shape[2]] = frames
    return out


def _anatomy(clip: Clip, columns: int) -> npt.NDArray[np.bool_]:
    """The sector (ai/sector.py) and every ultrasound region, on the SC's canvas."""
    decoded = load_clip(clip.path)
    covered = np.zeros((clip.frames.shape[1], columns), dtype=bool)
    covered[:, : clip.frames.shape[2]] = sector_mask(decoded)
    for region in decoded.regions:
        covered[region.min_y0 : region.max_y1 + 1, region.min_x0 : region.max_x1 + 1] = True
    assert covered.any()
    return covered


def _near(points: Any, shape: tuple[int, int], radius: int) -> npt.NDArray[np.bool_]:
    """Pixels within `radius` of the polyline through `points` (x, y)."""
    mask = np.zeros(shape, dtype=np.uint8)
    line = np.rint(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [line], False, 1, 2 * radius + 1)
    for x, y in line.reshape(-1, 2):
        cv2.circle(mask, (int(x), int(y)), radius, 1, -1)
    return mask.astype(bool)


def _caliper_marks(rendering: Rendering, frame: int, shape: tuple[int, int]) -> Any:
    """Where the calipers shown on `frame` and their numbers may change pixels."""
    allowed = np.zeros(shape, dtype=bool)
    for caliper in rendering.plan.calipers_on(frame):
        allowed |= _near(caliper.points, shape, 16)
    for tag in rendering.tags:
        if tag.shown_on(frame):
            width, height = text_size(tag.text, tag.size)
            allowed[tag.y : tag.y + height, tag.x : tag.x + width] = True
    return allowed


def _segment_middle(points: Any) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = points[0], points[-1]
    return [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in (0.35, 0.65)]


def _colour_near(frame: npt.NDArray[np.uint8], points: Any, colour: Any) -> int:
    """How many pixels within 2 px of the polyline have exactly `colour`."""
    near = _near(points, frame.shape[:2], 2)
    return int((frame[near] == np.array(colour, dtype=np.uint8)).all(axis=-1).sum())


def _entry_colour(rendering: Rendering, display: str) -> tuple[int, int, int]:
    (entry,) = [e for e in rendering.plan.entries if e.display == display]
    return entry.colour


# --- the legend stays off the anatomy -------------------------------------------------------


@pytest.mark.parametrize("name", CLIPS)
def test_no_legend_pixel_on_the_sector_or_a_region(study: Study, name: str) -> None:
    clip, rendering = study.clips[name], study.renderings[name]
    burned = _pixels(study.back[name])
    count, rows, columns = burned.shape[:3]
    assert int(study.back[name].Columns) == columns >= clip.frames.shape[2]
    covered = _anatomy(clip, columns)
    box = rendering.placement.box
    assert not covered[box.y : box.y1, box.x : box.x1].any()
    changed = (burned != _padded(clip.frames, columns)).any(axis=-1)
    for frame in range(count):
        stray = changed[frame] & covered & ~_caliper_marks(rendering, frame, (rows, columns))
        assert not stray.any(), (name, frame, np.argwhere(stray)[:5].tolist())
        assert changed[frame, box.y : box.y1, box.x : box.x1].any()  # the legend is there
    if rendering.widened:  # the SC says so, in words
        assert "panel added right of the source image" in study.back[name].ImageComments


def test_the_legend_goes_into_free_space_when_the_source_has_room(study: Study) -> None:
    """A Doppler image without its 2D thumbnail: the legend fits above the spectrum, and the
    canvas keeps the source's size."""
    clip = study.clips["tr_cw"]
    header = copy.deepcopy(clip.header)
    spectral = header.SequenceOfUltrasoundRegions[clip.doc["spectral_region_index"]]
    header.SequenceOfUltrasoundRegions = [spectral]
    frames = clip.frames.copy()
    frames[:, : spectral.RegionLocationMinY0] = 0
    plan = plan_for(header, study.report)
    rendering = render_for(header, frames, plan)
    assert not rendering.widened and rendering.frames.shape == frames.shape
    box = rendering.placement.box
    assert box.y1 < spectral.RegionLocationMinY0
    assert not (frames[0, box.y : box.y1, box.x : box.x1] > 24).any()
    changed = (rendering.frames[0] != frames[0]).any(axis=-1)
    assert changed[box.y : box.y1, box.x : box.x1].any()


# --- calipers through the measured beats ----------------------------------------------------


def _spans(starts: list[int], count: int, cycle: int) -> list[range]:
    """The rule of echo_node/results/overlay.py, restated: from each beat's frame to the
    frame before the next beat's; the last for the beats' median spacing (else one cycle),
    the first also for that long before it."""
    length = (
        int(statistics.median(b - a for a, b in itertools.pairwise(starts)))
        if len(starts) > 1
        else cycle
    )
    ends = [*starts[1:], starts[-1] + length]
    begins = [max(0, starts[0] - length), *starts[1:]]
    return [range(b, min(e, count)) for b, e in zip(begins, ends, strict=True)]


@pytest.mark.parametrize(
    ("key", "phase"), [("IVSd", "ed"), ("LVIDd", "ed"), ("LVPWd", "ed"), ("LVIDs", "es")]
)
def test_each_caliper_is_drawn_on_every_frame_of_its_beat(
    study: Study, key: str, phase: str
) -> None:
    clip, rendering = study.clips["plax"], study.renderings["plax"]
    burned = _pixels(study.back["plax"])
    value = study.report.value(key)
    assert value is not None
    colour = _entry_colour(rendering, value.display)
    starts = [f for f in clip.doc[f"{phase}_frames"] if f < len(burned)]
    assert [b.frame for b in value.beats] == starts and len(starts) >= 2
    cycle = round(60_000 / (clip.doc["heart_rate_bpm"] * clip.doc["frame_time_ms"]))
    spans = _spans(starts, len(burned), cycle)
    for beat, span in zip(value.beats, spans, strict=True):
        for frame in span:
            assert _colour_near(burned[frame], beat.points, colour) >= 5, (key, beat.frame, frame)
    shown = set().union(*spans)
    for frame in set(range(len(burned))) - shown:
        for beat in value.beats:
            assert _colour_near(burned[frame], beat.points, colour) == 0, (key, frame)
    assert shown == set(range(len(burned)))  # two beats of the phantom's cover the clip


def test_end_diastole_and_end_systole_frames_are_tagged(study: Study) -> None:
    clip, rendering = study.clips["plax"], study.renderings["plax"]
    burned = _pixels(study.back["plax"])
    for tag, key in (("ED", "ed_frames"), ("ES", "es_frames")):
        frames = [f for f in clip.doc[key] if f < len(burned)]
        text = f"{tag}: frames {', '.join(str(f + 1) for f in frames)}"
        items = [i for i in rendering.legend if i.text == text]
        assert {i.inverted for i in items} == {False, True}
        item = items[0]
        for frame in range(len(burned)):
            patch = text_patch(text, NOTE, item.size, inverted=frame in frames)
            height, width = patch.shape[:2]
            drawn = burned[frame, item.y : item.y + height, item.x : item.x + width]
            assert np.array_equal(drawn, patch), (tag, frame)


def test_each_doppler_peak_is_marked_inside_the_spectrum(study: Study) -> None:
    for name, key in (("tr_cw", "TR_Vmax"), ("mv_pw", "MV_E"), ("mv_pw", "MV_A")):
        clip, burned = study.clips[name], _pixels(study.back[name])[0]
        value = study.report.value(key)
        assert value is not None
        colour = _entry_colour(study.renderings[name], value.display)
        region = load_clip(clip.path).regions[clip.doc["spectral_region_index"]]
        for beat in value.beats:
            ((x, y),) = beat.points
            assert region.min_x0 <= x <= region.max_x1 and region.min_y0 <= y <= region.max_y1
            assert _colour_near(burned, beat.points, colour) >= 5, (key, beat.points)
        inside = np.zeros(burned.shape[:2], dtype=bool)
        inside[region.min_y0 : region.max_y1 + 1, region.min_x0 : region.max_x1 + 1] = True
        marked = (burned == np.array(colour, dtype=np.uint8)).all(axis=-1)
        box = study.renderings[name].placement.box
        marked[box.y : box.y1, box.x : box.x1] = False  # its legend line
        assert marked.any() and not (marked & ~inside).any(), key


def test_the_thumbnail_frame_shows_the_calipers_on_their_own_frame(study: Study) -> None:
    back, clip = study.back["plax"], study.clips["plax"]
    burned = _pixels(back)
    frame = int(back.RepresentativeFrameNumber) - 1
    assert frame in clip.doc["ed_frames"]  # three calipers were measured on an ED frame
    for key in ("IVSd", "LVIDd", "LVPWd"):
        value = study.report.value(key)
        assert value is not None
        colour = _entry_colour(study.renderings["plax"], value.display)
        (beat,) = [b for b in value.beats if b.frame == frame]
        assert _colour_near(burned[frame], beat.points, colour) >= 5
    measured = sorted(
        f for f in {*clip.doc["ed_frames"], *clip.doc["es_frames"]} if f < len(burned)
    )
    assert list(back.FrameNumbersOfInterest) == [f + 1 for f in measured]
    assert "RepresentativeFrameNumber" in study.back["tr_cw"]
    assert "RepresentativeFrameNumber" not in study.back["a4c"]  # LVEF has no caliper


# --- the printed values are the report's ----------------------------------------------------


def _expected(report: Report, uid: str) -> list[tuple[str, tuple[str, ...]]]:
    """(display, qualifiers) of every value the report has from the clip, derived included."""
    values = [v for v in report.values if v.source.sop_instance_uid == uid]
    derived = [d for d in report.derived if d.inputs and all(i in values for i in d.inputs)]
    return [(v.display, v.qualifiers) for v in (*values, *derived)]


@pytest.mark.parametrize("name", CLIPS)
def test_printed_values_are_the_reports_display_strings(study: Study, name: str) -> None:
    clip, rendering, report = study.clips[name], study.renderings[name], study.report
    burned = _pixels(study.back[name])
    expected = _expected(report, clip.doc["sop_instance_uid"])
    assert expected
    notes = list(dict.fromkeys(q for _, qualifiers in expected for q in qualifiers))
    printed = {}
    for item in rendering.legend:
        words = item.text.split()
        number = words[0] if words[0].isdigit() else None
        marks = [w for w in words if set(w) == {"*"}]
        display = " ".join(w for w in words[1 if number else 0 :] if w not in marks)
        printed[display] = (item, number, marks)
    for display, qualifiers in expected:
        item, number, marks = printed.pop(display)
        assert marks == ["*" * (notes.index(q) + 1) for q in qualifiers]
        # The label rendered from the report is exactly what the SC shows.
        text = f"{number}  {display}" if number else display
        text = " ".join((text, *marks))
        patch = text_patch(text, item.colour, item.size)
        height, width = patch.shape[:2]
        for frame in {0, len(burned) - 1}:
            shown = burned[frame, item.y : item.y + height, item.x : item.x + width]
            assert np.array_equal(shown, patch), (display, frame)
        assert item.colour in PALETTE if number else item.colour == TEXT
    # Everything else is the title, the footnotes, the ED/ES tags and the disclaimer.
    rest = list(dict.fromkeys(item.text for item, _, _ in printed.values()))
    assert rest[0] == TITLE
    phases = [text for text in rest if text.startswith(("ED: frame", "ES: frame"))]
    footnotes = " ".join(" ".join(text.split()) for text in rest[1:] if text not in phases)
    wanted = [f"{'*' * (i + 1)} {shorten(q)}" for i, q in enumerate(notes)]
    assert footnotes == " ".join([*wanted, DISCLAIMER])


def test_printed_values_are_the_srs(study: Study) -> None:
    """Each printed measurement is a NUM of the SR built from the same results."""
    sr = build_sr([SourceClip(c.header, c.result) for c in study.clips.values()], node=NODE)
    numbers = [
        (
            float(item.MeasuredValueSequence[0].NumericValue),
            item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue,
        )
        for item in walk(sr.ContentSequence)
        if item.ValueType == "NUM" and item.get("MeasuredValueSequence")
    ]
    for name, rendering in study.renderings.items():
        for value in rendering.plan.values:
            assert any(
                unit == value.unit
                and value.presentation.display(value.presentation.sr_value(number)) == value.display
                for number, unit in numbers
            ), (name, value.display)


def test_qualifiers_are_shortened_to_their_first_clause() -> None:
    assert (
        shorten("Measured on incomplete cardiac cycles.") == "Measured on incomplete cardiac cycles"
    )
    assert (
        shorten("Clip shorter than two beats: end-diastole/end-systole taken at the largest.")
        == "Clip shorter than two beats"
    )
    assert shorten("Flow identified by its Doppler pattern; the clip does not name it.") == (
        "Flow identified by its Doppler pattern"
    )
    assert shorten("AI model input normalised with approximate statistics (its training).") == (
        "AI model input normalised with approximate statistics"
    )


def test_a_withheld_value_and_another_clips_value_are_not_drawn(study: Study) -> None:
    clip = study.clips["plax"]
    flags = {**QUALIFIED, "IVSd": ("outside_physiological_range",)}
    results = _results(study.phantom, flags)
    # A second TR recording whose value is qualified: the report takes the first clip's.
    second = copy.deepcopy(study.clips["tr_cw"].header)
    second.SOPInstanceUID = generate_uid()
    tr = dataclasses.replace(
        doppler_result(truth(study.phantom, "tr_cw"), {"TR_Vmax": ("partial_beats",)}),
        sop_instance_uid=second.SOPInstanceUID,
    )
    report = build_report(
        [*(SourceClip(study.clips[n].header, results[n]) for n in CLIPS), SourceClip(second, tr)]
    )
    assert report.value("IVSd") is None and report.value("TR_Vmax") is not None
    assert plan_for(second, report).empty  # no overlay for the clip whose value lost
    plan = plan_for(clip.header, report, frame_time_ms=clip.doc["frame_time_ms"])
    rendering = render_for(clip.header, clip.frames, plan)
    assert not any("IVSd" in item.text or "LV mass" in item.text for item in rendering.legend)
    ivsd = results["plax"].pipelines[0].findings[0]
    assert ivsd.name == "IVSd"
    frame = ivsd.beats[0].frame  # an ED frame: only ED calipers shown, none of them IVSd
    middle = _near(_segment_middle(ivsd.beats[0].points), clip.frames.shape[1:3], 1)
    source_part = rendering.frames[frame][:, : clip.frames.shape[2]]
    assert np.array_equal(source_part[middle], clip.frames[frame][middle])


# --- legible colours ------------------------------------------------------------------------


def _luminance(colour: Any) -> float:
    channel = np.asarray(colour, dtype=np.float64) / 255.0
    linear = np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def _contrast(a: Any, b: Any) -> float:
    """WCAG 2 contrast ratio."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_colours_are_legible_on_grey_and_on_the_legend() -> None:
    for colour in (*PALETTE, TEXT, NOTE):
        assert _contrast(colour, (0, 0, 0)) >= 7.0, colour  # text on the black legend (AAA)
    lab = cv2.cvtColor(np.array([PALETTE], dtype=np.uint8), cv2.COLOR_RGB2LAB)[0].astype(float)
    chroma = np.hypot(lab[:, 1] - 128, lab[:, 2] - 128)
    assert (chroma >= 40).all(), chroma  # a hue no grey has (grey: 0)
    for grey in range(256):
        for colour in PALETTE:
            # A caliper is its colour over a black outline: one of them stands out (3:1, the
            # WCAG minimum for graphics) from any grey of the image.
            seen = max(_contrast(colour, (grey,) * 3), _contrast((0, 0, 0), (grey,) * 3))
            assert seen >= 3.0, (colour, grey)


def test_caliper_pixels_carry_the_outline(study: Study) -> None:
    """On the image a caliper is its colour with black beside it."""
    burned = _pixels(study.back["plax"])
    value = study.report.value("LVIDd")
    assert value is not None
    colour = _entry_colour(study.renderings["plax"], value.display)
    beat = value.beats[0]
    frame = burned[beat.frame]
    near = _near(beat.points, frame.shape[:2], 3)
    assert (frame[near] == np.array(colour, dtype=np.uint8)).all(axis=-1).any()
    assert (frame[near] == 0).all(axis=-1).any()


# --- the SC as DICOM ------------------------------------------------------------------------


@pytest.mark.peer
@pytest.mark.parametrize("name", ["plax", "tr_cw"])
@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, ExplicitVRLittleEndian])
def test_dciodvfy_reports_no_error_and_no_warning(
    study: Study, name: str, syntax: str, tmp_path: Path
) -> None:
    clip = study.clips[name]
    sc = build_overlay_sc(clip.header, study.renderings[name], node=NODE, transfer_syntax=syntax)
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    errors, warnings = dciodvfy(path)
    assert (errors, warnings) == ([], [])
    back = pydicom.dcmread(path)
    assert "Laterality" not in back and back.BodyPartExamined == "HEART"
    assert back.PatientOrientation == "" and back.Columns == study.renderings[name].frames.shape[2]


# --- what a PACS shows ----------------------------------------------------------------------


def test_orthanc_shows_calipers_and_legend_on_its_first_frame_preview(
    study: Study,
    tmp_path: Path,
    orthanc_factory: Any,  # noqa: F811
) -> None:
    """The SC as the node sends it (JPEG), stored in Orthanc with dcmtk's storescu: Orthanc's
    rendering of frame 1 (its thumbnail) and of the Representative Frame show the calipers."""
    pacs = orthanc_factory().start()
    clip, rendering = study.clips["plax"], study.renderings["plax"]
    sc = build_overlay_sc(clip.header, rendering, node=NODE)  # JPEG Baseline, the default
    path = tmp_path / "plax-sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    subprocess.run(
        [
            require_tool("storescu"),
            "-xy",
            "-aec",
            pacs.aet,
            "127.0.0.1",
            str(pacs.dicom_port),
            str(path),
        ],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (stored,) = pacs.instances()
    for frame in (0, int(sc.RepresentativeFrameNumber) - 1):
        response = httpx.get(
            f"{pacs.url}/instances/{stored['ID']}/frames/{frame}/rendered", timeout=30
        )
        response.raise_for_status()
        shown = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        assert shown.shape == rendering.frames[frame].shape
        chroma = shown.max(axis=-1).astype(int) - shown.min(axis=-1)
        for caliper in rendering.plan.calipers_on(frame):
            near = _near(caliper.points, shown.shape[:2], 2)
            assert (chroma[near] > 80).sum() >= 5, (frame, caliper.number)
        box = rendering.placement.box
        assert (shown[box.y : box.y1, box.x : box.x1] > 128).any()  # the legend's text


def test_a_legend_taller_than_a_small_image_gets_a_taller_canvas(study: Study) -> None:
    clip = study.clips["plax"]
    header = copy.deepcopy(clip.header)
    del header.SequenceOfUltrasoundRegions
    header.Rows, header.Columns = 60, 80
    frames = np.zeros((len(clip.frames), 60, 80, 3), dtype=np.uint8)
    plan = plan_for(header, study.report, frame_time_ms=clip.doc["frame_time_ms"])
    rendering = render_for(header, frames, plan)
    box = rendering.placement.box
    assert rendering.widened and rendering.lengthened
    assert box.x >= 80 and box.y1 <= rendering.frames.shape[1]
    assert all(
        item.y + item.patch().shape[0] <= box.y1 and item.x + item.patch().shape[1] <= box.x1
        for item in rendering.legend
    )
    sc = build_overlay_sc(header, rendering, node=NODE, transfer_syntax=ExplicitVRLittleEndian)
    assert (sc.Rows, sc.Columns) == rendering.frames.shape[1:3]
    assert f"rows 61 to {sc.Rows} added" in sc.ImageComments


def test_a_peak_outside_the_spectrum_is_not_marked(study: Study) -> None:
    """A reported TR whose last beat's point lies above the spectral region (in the 2D
    thumbnail): the other beats are marked, that one is not."""
    clip = study.clips["tr_cw"]
    result = clip.result
    (tr,) = result.pipelines[0].findings
    region = load_clip(clip.path).regions[clip.doc["spectral_region_index"]]
    stray = (float(region.min_x0 + 40), float(region.min_y0 - 30))
    beats = (*tr.beats[:-1], dataclasses.replace(tr.beats[-1], points=(stray,)))
    moved = dataclasses.replace(tr, beats=beats)
    pipeline = dataclasses.replace(result.pipelines[0], findings=(moved,))
    report = build_report(
        [SourceClip(clip.header, dataclasses.replace(result, pipelines=(pipeline,)))]
    )
    plan = plan_for(clip.header, report)
    marked = [p for c in plan.calipers for p in c.points]
    assert marked == [b.points[0] for b in tr.beats[:-1]]
    rendering = render_for(clip.header, clip.frames, plan)
    near = _near([stray], clip.frames.shape[1:3], 6)
    source_part = rendering.frames[0][:, : clip.frames.shape[2]]
    assert np.array_equal(source_part[near], clip.frames[0][near])
