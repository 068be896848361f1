"""run_job on a node holding an imported phantom study: SR and overlays stored and queued,
checked with dciodvfy and dsrdump against the phantom's ground truth; skip; reprocess."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import create_engine, func, select, text

from ai.phantom.study import generate_study
from echo_node.cli.importer import import_file
from echo_node.cli.jobs import job_detail
from echo_node.jobs import queue
from echo_node.jobs.outcome import JobOutcome
from echo_node.jobs.selection import processable_instances
from echo_node.node import Node, open_node
from echo_node.processing import run_job
from echo_node.settings import load_settings
from storage.models import Delivery, FindingRow, Instance, Job, JobClip, Output, Study
from storage.queue import utc_now
from tests.conftest import require_tool

# Full-width phantom frames keep the Doppler engine within a few % of the truth; one cycle
# at 20 frames/s keeps the 2D clips (and their decoding) small.
DESTINATIONS = [
    {"name": "pacs", "kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242},
    {"name": "web", "kind": "dicomweb", "url": "http://127.0.0.1:1/dicom-web"},
]
# dsrdump's concept name of each phantom truth key, and the factor from truth to SR units.
SR_CONCEPTS = {
    "TR_Vmax": ("Peak Blood Velocity", 100.0),  # truth m/s, SR cm/s
    "MV_E": ("Mitral Valve E-Wave Peak Velocity", 1.0),
    "MV_A": ("Mitral Valve A-Wave Peak Velocity", 1.0),
    "MV_E_A": ("Mitral Valve E to A Ratio", 1.0),
}
PLAX_NOT_MEASURED = (
    "Clip 1 (parasternal long-axis): LV wall thicknesses and dimensions not measured; "
    "the AI model is not installed."
)
NUM_LINE = re.compile(r'NUM:\(,,"(?P<name>[^"]+)"\)="(?P<value>[^"]+)" \((?P<unit>[^,]+),UCUM')


@dataclass
class Run:
    node: Node
    job_id: int
    outcome: JobOutcome
    phantom: Path


def make_node(data_dir: Path, **environ: str) -> Node:
    settings = load_settings(
        environ={
            "ECHO_NODE_DATA_DIR": str(data_dir),
            "ECHO_NODE_STABLE_AFTER_S": "0",
            "ECHO_NODE_DESTINATIONS": json.dumps(DESTINATIONS),
            **environ,
        }
    )
    return open_node(settings)


def claim_next(node: Node) -> int:
    with node.sessions.begin() as session:
        job = queue.claim_job(session, "test-worker", node.settings, utc_now())
        assert job is not None
        return job.id


def stable_job(node: Node) -> int:
    with node.sessions.begin() as session:
        created = queue.enqueue_stable_studies(session, node.settings, utc_now())
    assert len(created) == 1, created
    return claim_next(node)


def outputs_of(node: Node, job_id: int) -> list[Output]:
    with node.sessions() as session:
        rows = session.scalars(select(Output).where(Output.job_id == job_id)).all()
        for row in rows:
            _ = row.instance.path  # loaded while the session is open
        return list(rows)


def measured_clips(node: Node, job_id: int) -> set[str]:
    """The clips of a job with at least one reported value: the ones that get an overlay.
    Which values random weights make plausible is up to the weights, so tests count these
    rather than assume a number."""
    with node.sessions() as session:
        clips = session.scalars(select(JobClip).where(JobClip.job_id == job_id)).all()
        return {
            clip.sop_instance_uid
            for clip in clips
            if any(row["decision"] == "reported" for row in clip.detail.get("report", []))
        }


def output_path(node: Node, output: Output) -> Path:
    return node.store.root / output.instance.path


def dsrdump(path: Path) -> str:
    return subprocess.run(
        [require_tool("dsrdump"), "+Pl", str(path)], capture_output=True, text=True, check=True
    ).stdout


def dsr_numbers(path: Path) -> dict[str, tuple[float, str]]:
    text = dsrdump(path)
    return {m["name"]: (float(m["value"]), m["unit"]) for m in NUM_LINE.finditer(text)}


def dciodvfy_findings(path: Path) -> list[str]:
    """dciodvfy's errors and warnings for a file (the node's outputs must have neither)."""
    proc = subprocess.run(
        [require_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    assert any(line.strip() and not line.startswith(("Error", "Warning")) for line in lines)
    return [line for line in lines if line.startswith(("Error", "Warning"))]


def truth(phantom: Path, clip: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((phantom / f"{clip}.json").read_text())
    return document


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("processing")
    phantom = root / "phantom"
    generate_study(phantom, 1, rows=480, columns=640, cycles=1, frame_rate=20.0)
    node = make_node(root / "data")
    for path in sorted(phantom.glob("*.dcm")):
        assert import_file(node.ingestor, path).outcome == "stored"
    job_id = stable_job(node)
    outcome = run_job(node, job_id, None)
    yield Run(node, job_id, outcome, phantom)
    node.engine.dispose()


def test_done_with_an_sr_and_an_overlay_per_measured_clip(first: Run) -> None:
    assert first.outcome.state == "done", first.outcome.message
    outputs = outputs_of(first.node, first.job_id)
    kinds = sorted(o.kind for o in outputs)
    # Doppler gives values without weights; PLAX/A4C report their models as not installed.
    # Beside the SR: the TID 1500 copy for viewers and the PDF report (both on by default).
    assert kinds == ["pdf", "sc", "sc", "sr", "tid1500"]
    doppler_uids = {truth(first.phantom, n)["sop_instance_uid"] for n in ("tr_cw", "mv_pw")}
    study_uid = truth(first.phantom, "plax")["study_instance_uid"]
    for output in outputs:
        ds = pydicom.dcmread(output_path(first.node, output))
        assert ds.StudyInstanceUID == study_uid
        assert ds.SOPInstanceUID == output.sop_instance_uid
        if output.kind == "sc":
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4"
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in doppler_uids
            assert ds.SeriesDescription == "Echo Node overlays, run 1"
    steps = {step["step"] for step in first.outcome.steps}
    assert {"decode", "view", "pipeline:doppler", "pipeline:plax", "sr", "sc"} <= steps
    assert {"tid1500", "pdf"} <= steps
    assert all(step["seconds"] >= 0 for step in first.outcome.steps)


@pytest.mark.peer
def test_outputs_pass_dciodvfy_without_errors_or_warnings(first: Run) -> None:
    for output in outputs_of(first.node, first.job_id):
        path = output_path(first.node, output)
        assert dciodvfy_findings(path) == [], (output.kind, path)


@pytest.mark.peer
def test_sr_values_match_the_phantom_truth(first: Run) -> None:
    (sr,) = [o for o in outputs_of(first.node, first.job_id) if o.kind == "sr"]
    numbers = dsr_numbers(output_path(first.node, sr))
    expected = {
        **truth(first.phantom, "tr_cw")["expected"],
        **truth(first.phantom, "mv_pw")["expected"],
    }
    assert set(SR_CONCEPTS) <= set(expected)
    for key, (concept, factor) in SR_CONCEPTS.items():
        value, unit = numbers[concept]
        assert unit == ("{ratio}" if key == "MV_E_A" else "cm/s")
        want = expected[key]["value"] * factor
        # Peak velocities are written as speeds (TR's direction is its Flow Direction).
        assert value > 0 and abs(value - abs(want)) <= 0.05 * abs(want), (key, value, want)
    # What did not run is said, not left out: the 2D clips' pipelines have no weights here.
    text = dsrdump(output_path(first.node, sr))
    assert PLAX_NOT_MEASURED in text


@pytest.mark.peer
def test_the_tid1500_copy_and_the_pdf_carry_the_srs_values(first: Run) -> None:
    outputs = {o.kind: o for o in outputs_of(first.node, first.job_id)}
    sr = pydicom.dcmread(output_path(first.node, outputs["sr"]))
    copy = pydicom.dcmread(output_path(first.node, outputs["tid1500"]))
    evidence = {
        ref.ReferencedSOPInstanceUID
        for study in copy.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert sr.SOPInstanceUID in evidence  # tied to the echo SR of the same run
    echo = dsr_numbers(output_path(first.node, outputs["sr"]))
    copied = dsr_numbers(output_path(first.node, outputs["tid1500"]))
    # The copy prints the report model's values, rounded as a cart prints them (1 cm/s), and
    # its E/A is the ratio of the reported E and A (the pipeline's own is per beat).
    pairs = (
        ("Tricuspid regurgitation Vmax", "Peak Blood Velocity", 0.5),
        ("Mitral valve E-wave Vmax", "Mitral Valve E-Wave Peak Velocity", 0.5),
        ("Mitral Valve E to A Ratio", "Mitral Valve E to A Ratio", 0.02),
    )
    for name, echo_name, resolution in pairs:
        assert copied[name][1] == echo[echo_name][1]
        assert copied[name][0] == pytest.approx(echo[echo_name][0], abs=resolution), name
    pdf = pydicom.dcmread(output_path(first.node, outputs["pdf"]))
    assert pdf.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert pdf.StudyInstanceUID == sr.StudyInstanceUID
    document = pdf.EncapsulatedDocument[: pdf.EncapsulatedDocumentLength]
    text = subprocess.run(
        [require_tool("pdftotext"), "-", "-"], input=document, capture_output=True, check=True
    ).stdout.decode()
    tr = copied["Tricuspid regurgitation Vmax"][0]
    assert f"TR Vmax {tr / 100:.2f} m/s" in text
    assert "LV ejection fraction not measured; the AI model is not installed." in text


def test_clips_findings_and_deliveries_are_recorded(first: Run) -> None:
    node = first.node
    with node.sessions() as session:
        clips = {c.sop_instance_uid: c for c in session.scalars(select(JobClip))}
        for name, view in (("plax", "plax"), ("a4c", "a4c"), ("tr_cw", "doppler")):
            clip = clips[truth(first.phantom, name)["sop_instance_uid"]]
            assert clip.view == view and clip.job_id == first.job_id
        plax = clips[truth(first.phantom, "plax")["sop_instance_uid"]]
        assert plax.detail["pipelines"][0]["status"] == "model_not_installed"
        findings = {f.name: f for f in session.scalars(select(FindingRow))}
        tr = truth(first.phantom, "tr_cw")
        assert findings["TR_Vmax"].sop_instance_uid == tr["sop_instance_uid"]
        assert findings["TR_Vmax"].model_name == "classical-doppler"
        deliveries = session.scalars(select(Delivery)).all()
        outputs = session.scalars(select(Output)).all()
        pairs = {(d.output_id, d.destination) for d in deliveries}
        assert pairs == {(o.id, d["name"]) for o in outputs for d in DESTINATIONS}
        assert {d.state for d in deliveries} == {"pending"}
        # `jobs show` lists what the report did with each value, in the operator's terms.
        job = session.get(Job, first.job_id)
        assert job is not None
        rows = {row["value"]: row for row in job_detail(session, job)["report"]}
    tr_row = rows["TR_Vmax"]
    assert tr_row["decision"] == "reported" and tr_row["shown"].startswith("TR Vmax ")
    assert "beats_from_ecg" in tr_row["flags"]
    assert tr_row["algorithm"] == "classical-doppler 1.0.0"
    assert tr_row["sop_instance_uid"] == tr["sop_instance_uid"]


def test_own_outputs_never_make_a_job(first: Run) -> None:
    node = first.node
    with node.sessions() as session:
        study_id = session.scalars(select(Study.id)).one()
        processable = processable_instances(session, study_id, node.settings)
        assert len(processable) == 4  # the four phantom clips, not the SR or the overlays
    with node.sessions.begin() as session:
        assert queue.enqueue_stable_studies(session, node.settings, utc_now()) == []


def test_a_job_taken_over_after_its_results_were_written_adds_nothing(first: Run) -> None:
    before = len(outputs_of(first.node, first.job_id))
    again = run_job(first.node, first.job_id, None)
    assert again.state == "done"
    assert len(outputs_of(first.node, first.job_id)) == before


@pytest.mark.peer
def test_reprocess_supersedes_the_earlier_sr(first: Run) -> None:
    node = first.node
    (old_sr,) = [o for o in outputs_of(node, first.job_id) if o.kind == "sr"]
    with node.sessions.begin() as session:
        study_id = session.scalars(select(Study.id)).one()
        queue.enqueue_reprocess(session, [study_id], utc_now(), "doppler")
    job_id = claim_next(node)
    outcome = run_job(node, job_id, None)
    assert outcome.state == "done", outcome.message
    # Only the named pipeline ran, with its family (the neural Doppler models beside it).
    ran = {s["step"] for s in outcome.steps if s["step"].startswith("pipeline:")}
    assert ran == {"pipeline:doppler", "pipeline:doppler_neural"}
    (new_sr,) = [o for o in outputs_of(node, job_id) if o.kind == "sr"]
    ds = pydicom.dcmread(output_path(node, new_sr))
    (study_ref,) = ds.PredecessorDocumentsSequence
    assert study_ref.StudyInstanceUID == ds.StudyInstanceUID
    reference = study_ref.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == old_sr.sop_instance_uid
    assert dciodvfy_findings(output_path(node, new_sr)) == []
    # A new run: its own series number and a description that says it supersedes the first.
    old = pydicom.dcmread(output_path(node, old_sr), stop_before_pixels=True)
    assert (old.SeriesNumber, old.SeriesDescription) == (911, "Echo Node report, run 1")
    assert (ds.SeriesNumber, ds.SeriesDescription) == (
        921,
        "Echo Node report, run 2, supersedes run 1",
    )
    assert (ds.SeriesDate, ds.SeriesTime) >= (old.SeriesDate, old.SeriesTime)
    overlays = [o for o in outputs_of(node, job_id) if o.kind == "sc"]
    assert overlays  # the Doppler clips were analysed again: their overlays are run 2's
    for overlay in overlays:
        sc = pydicom.dcmread(output_path(node, overlay), stop_before_pixels=True)
        assert (sc.SeriesNumber, sc.SeriesDescription) == (922, "Echo Node overlays, run 2")
        assert sc.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    listed = {
        sop.ReferencedSOPInstanceUID
        for series in ds.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert listed == {o.sop_instance_uid for o in overlays}
    with node.sessions() as session:
        earlier = session.get(Output, old_sr.id)
        assert earlier is not None and earlier.superseded_by_job_id == job_id
        latest = session.get(Output, new_sr.id)
        assert latest is not None and latest.superseded_by_job_id is None
        # The earlier results stay on record: both runs' findings and files.
        jobs = {f.job_id for f in session.scalars(select(FindingRow))}
        assert {first.job_id, job_id} <= jobs
    assert output_path(node, old_sr).is_file()
    # The TID 1500 copy follows the same rules: the new one names the earlier as predecessor;
    # the earlier copy and PDF are marked replaced.
    (old_copy,) = [o for o in outputs_of(node, first.job_id) if o.kind == "tid1500"]
    (new_copy,) = [o for o in outputs_of(node, job_id) if o.kind == "tid1500"]
    copy = pydicom.dcmread(output_path(node, new_copy))
    reference = copy.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert reference.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == old_copy.sop_instance_uid
    with node.sessions() as session:
        for kind in ("tid1500", "pdf"):
            rows = session.scalars(select(Output).where(Output.kind == kind)).all()
            by_job = {row.job_id: row.superseded_by_job_id for row in rows}
            assert by_job == {first.job_id: job_id, job_id: None}, kind


@pytest.mark.peer
def test_a_reprocess_of_one_pipeline_keeps_the_other_pipelines_values(first: Run) -> None:
    """Its SR supersedes the full one, so it must carry every value the full one had."""
    node = first.node
    with node.sessions.begin() as session:
        study_id = session.scalars(select(Study.id)).one()
        queue.enqueue_reprocess(session, [study_id], utc_now(), "plax")
    job_id = claim_next(node)
    outcome = run_job(node, job_id, None)
    assert outcome.state == "done", outcome.message
    ran = {s["step"] for s in outcome.steps if s["step"].startswith("pipeline:")}
    assert ran == {"pipeline:plax"}
    (old_sr,) = [o for o in outputs_of(node, first.job_id) if o.kind == "sr"]
    (new_sr,) = [o for o in outputs_of(node, job_id) if o.kind == "sr"]
    assert dsr_numbers(output_path(node, new_sr)) == dsr_numbers(output_path(node, old_sr))
    assert PLAX_NOT_MEASURED in dsrdump(output_path(node, new_sr))
    # No new overlay: the Doppler clips were not analysed again; their overlays stand.
    assert sorted(o.kind for o in outputs_of(node, job_id)) == ["pdf", "sr", "tid1500"]
    with node.sessions() as session:
        carried = session.scalars(select(FindingRow).where(FindingRow.job_id == job_id)).all()
        assert {f.name for f in carried} >= {"TR_Vmax", "MV_E", "MV_A", "MV_E_A"}
        assert {f.model_name for f in carried} == {"classical-doppler"}


def _doppler_only_node(tmp_path: Path) -> tuple[Node, int]:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 3, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data")
    for name in ("tr_cw", "mv_pw"):
        assert import_file(node.ingestor, phantom / f"{name}.dcm").outcome == "stored"
    return node, stable_job(node)


def _stored_files(node: Node) -> list[Path]:
    return sorted(p for p in (node.store.root).rglob("*.dcm") if "quarantine" not in p.parts)


@pytest.mark.parametrize("fault", ["write_sr", "write_documents", "supersede_reports"])
def test_a_failed_job_leaves_no_output_in_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A fault after the overlays are written (the SR writer), or inside the closing
    transaction, leaves neither rows nor files; the job's next attempt writes them once."""
    node, job_id = _doppler_only_node(tmp_path)
    sources = _stored_files(node)
    assert len(sources) == 2

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"injected fault in {fault}")

    monkeypatch.setattr(f"echo_node.processing.run.{fault}", broken)
    with pytest.raises(RuntimeError, match="injected fault"):
        run_job(node, job_id, None)
    assert _stored_files(node) == sources
    assert list((node.store.root / "tmp").iterdir()) == []
    with node.sessions() as session:
        assert session.scalars(select(Output)).all() == []
        assert session.scalar(select(func.count(Instance.id))) == 2

    def own_stored() -> float:
        labels = {"transport": "node", "outcome": "stored"}
        registry = node.metrics.registry
        return registry.get_sample_value("echo_node_instances_received_total", labels) or 0.0

    assert own_stored() == 0
    monkeypatch.undo()
    outcome = run_job(node, job_id, None)
    assert outcome.state == "done", outcome.message
    assert sorted(o.kind for o in outputs_of(node, job_id)) == [
        "pdf",
        "sc",
        "sc",
        "sr",
        "tid1500",
    ]
    assert len(_stored_files(node)) == 7
    assert own_stored() == 5
    node.engine.dispose()


def test_a_fault_in_the_pdf_after_the_tid1500_copy_was_staged_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, job_id = _doppler_only_node(tmp_path)
    sources = _stored_files(node)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected fault in the PDF layout")

    monkeypatch.setattr("echo_node.processing.documents.pdflayout.render", broken)
    with pytest.raises(RuntimeError, match="injected fault"):
        run_job(node, job_id, None)
    assert _stored_files(node) == sources
    assert list((node.store.root / "tmp").iterdir()) == []
    node.engine.dispose()


def test_a_pdf_over_the_limit_is_not_written_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 3, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data", ECHO_NODE_PDF_MAX_BYTES="10000")
    try:
        assert import_file(node.ingestor, phantom / "tr_cw.dcm").outcome == "stored"
        job_id = stable_job(node)
        with caplog.at_level("WARNING", logger="echo_node.processing.documents"):
            outcome = run_job(node, job_id, None)
        assert outcome.state == "done", outcome.message
        assert sorted(o.kind for o in outputs_of(node, job_id)) == ["sc", "sr", "tid1500"]
        (record,) = [r for r in caplog.records if "pdf_max_bytes" in r.getMessage()]
        assert record.bytes > 10000 and record.pdf_max_bytes == 10000  # type: ignore[attr-defined]
        assert list((node.store.root / "tmp").iterdir()) == []  # nothing half-written
    finally:
        node.engine.dispose()


def test_the_documents_can_be_turned_off(tmp_path: Path) -> None:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 4, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(
        tmp_path / "data", ECHO_NODE_MEASUREMENT_REPORT="false", ECHO_NODE_PDF_REPORT="false"
    )
    try:
        assert import_file(node.ingestor, phantom / "tr_cw.dcm").outcome == "stored"
        job_id = stable_job(node)
        assert run_job(node, job_id, None).state == "done"
        assert sorted(o.kind for o in outputs_of(node, job_id)) == ["sc", "sr"]
    finally:
        node.engine.dispose()


@pytest.mark.peer
def test_sr_template_5300_setting_stores_a_tid_5300_sr(tmp_path: Path) -> None:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 6, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data", ECHO_NODE_SR_TEMPLATE="5300")
    try:
        for clip in ("tr_cw", "mv_pw"):
            assert import_file(node.ingestor, phantom / f"{clip}.dcm").outcome == "stored"
        job_id = stable_job(node)
        assert run_job(node, job_id, None).state == "done"
        (sr,) = [o for o in outputs_of(node, job_id) if o.kind == "sr"]
        path = output_path(node, sr)
        assert pydicom.dcmread(path).ContentTemplateSequence[0].TemplateIdentifier == "5300"
        assert dciodvfy_findings(path) == []
        dump = dsrdump(path)
        assert '"Pre-coordinated Measurements"' in dump and "Findings" not in dump
        numbers = dsr_numbers(path)
        # CID 12300 concepts, with the Doppler engine's values in UCUM units.
        assert numbers["Tricuspid regurgitation Vmax"][1] == "cm/s"
        assert numbers["Mitral valve E-wave Vmax"][1] == "cm/s"
        assert numbers["Mitral Valve E to A Ratio"][1] == "{ratio}"
    finally:
        node.engine.dispose()


def test_only_unknown_views_is_skipped_without_an_sr(tmp_path: Path) -> None:
    phantom = tmp_path / "phantom"
    generate_study(phantom, 2, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data")
    for name in ("plax", "a4c"):
        ds = pydicom.dcmread(phantom / f"{name}.dcm")
        # No description, comment or view code: nothing in the header says which view it is.
        for keyword in ("SeriesDescription", "ImageComments", "ViewCodeSequence"):
            if keyword in ds:
                delattr(ds, keyword)
        blind = tmp_path / f"{name}-blind.dcm"
        ds.save_as(blind)
        assert import_file(node.ingestor, blind).outcome == "stored"
    job_id = stable_job(node)
    outcome = run_job(node, job_id, None)
    assert outcome.state == "skipped"
    assert "no measurement pipeline ran" in outcome.message
    assert "view unknown" in outcome.message
    assert outputs_of(node, job_id) == []
    with node.sessions() as session:
        clips = session.scalars(select(JobClip).where(JobClip.job_id == job_id)).all()
        assert sorted(c.view for c in clips) == ["unknown", "unknown"]
        assert session.scalars(select(Job.id)).all() == [job_id]
    node.engine.dispose()


@pytest.mark.model
def test_an_installed_view_classifier_decides_clips_the_header_cannot(tmp_path: Path) -> None:
    import torch

    from ai.models.loader import LoadedModel
    from ai.models.view_classifier import MODEL
    from tests.test_models import random_model, small_spec, store_with

    torch.manual_seed(0)
    spec = small_spec(MODEL, input_height=64, input_width=64)
    model = random_model(spec, seed=0)
    head = model.classifier[2]  # a head that always answers Parasternal_Long
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-5.0)
        head.bias[spec.labels.index("Parasternal_Long")] = 5.0
    store = store_with(tmp_path / "models", spec)
    store.add(LoadedModel(spec, model, "0" * 64, torch.device("cpu")))

    phantom = tmp_path / "phantom"
    generate_study(phantom, 3, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data")
    ds = pydicom.dcmread(phantom / "a4c.dcm")
    del ds.SeriesDescription  # nothing in the header names the view
    ds.save_as(tmp_path / "blind.dcm")
    assert import_file(node.ingestor, tmp_path / "blind.dcm").outcome == "stored"
    job_id = stable_job(node)
    outcome = run_job(node, job_id, store)
    # Decided PLAX by the classifier; the PLAX weights are not installed: nothing measured.
    assert outcome.state == "skipped"
    assert "plax model_not_installed" in outcome.message
    with node.sessions() as session:
        (clip,) = session.scalars(select(JobClip).where(JobClip.job_id == job_id)).all()
        assert (clip.view, clip.decided_by) == ("plax", MODEL)
        assert clip.confidence > 0.99
    node.engine.dispose()


def test_run_job_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    # A database of its own: the session's PostgreSQL server is shared with other tests.
    name = f"processing_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    phantom = tmp_path / "phantom"
    generate_study(phantom, 4, rows=480, columns=640, cycles=1, frame_rate=15.0)
    settings = load_settings(
        environ={
            "ECHO_NODE_DATA_DIR": str(tmp_path / "data"),
            "ECHO_NODE_DATABASE_URL": postgres_url.rsplit("/", 1)[0] + f"/{name}",
            "ECHO_NODE_STABLE_AFTER_S": "0",
            "ECHO_NODE_DESTINATIONS": json.dumps(DESTINATIONS),
        }
    )
    node = open_node(settings)
    for clip in ("tr_cw", "mv_pw"):
        assert import_file(node.ingestor, phantom / f"{clip}.dcm").outcome == "stored"
    first_job = stable_job(node)
    assert run_job(node, first_job, None).state == "done"
    with node.sessions.begin() as session:
        study_id = session.scalars(select(Study.id)).one()
        queue.enqueue_reprocess(session, [study_id], utc_now(), None)
    second_job = claim_next(node)
    assert run_job(node, second_job, None).state == "done"
    with node.sessions() as session:
        reports = session.scalars(select(Output).where(Output.kind == "sr").order_by(Output.id))
        assert [(o.job_id, o.superseded_by_job_id) for o in reports] == [
            (first_job, second_job),
            (second_job, None),
        ]
        outputs = session.scalars(select(Output)).all()
        assert len(session.scalars(select(Delivery)).all()) == len(outputs) * len(DESTINATIONS)
    node.engine.dispose()


def test_no_write_lock_is_held_while_models_run(tmp_path: Path) -> None:
    """Each time a model is asked for (view classifier, PLAX, A4C), another connection takes
    SQLite's write lock at once: run_job holds no write transaction while it computes."""
    from ai.models.store import ModelStore, NotInstalled

    node = make_node(tmp_path / "data")
    database = tmp_path / "data" / "echo-node.db"
    probes: list[str] = []

    class ProbingStore(ModelStore):
        def get(self, name: str) -> Any:
            other = sqlite3.connect(database, timeout=0.2, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # fails with "database is locked" if held
                other.execute("ROLLBACK")
                probes.append(name)
            finally:
                other.close()
            loaded = super().get(name)
            assert isinstance(loaded, NotInstalled)
            return loaded

    phantom = tmp_path / "phantom"
    generate_study(phantom, 5, rows=240, columns=320, cycles=1, frame_rate=15.0)
    for clip in ("plax", "a4c"):
        assert import_file(node.ingestor, phantom / f"{clip}.dcm").outcome == "stored"
    job_id = stable_job(node)
    outcome = run_job(node, job_id, ProbingStore(tmp_path / "models"))
    assert outcome.state == "skipped"
    assert {"echonet-lvh-plax", "echonet-dynamic-segmentation"} <= set(probes)
    node.engine.dispose()
