"""A phantom study with every model installed (random weights in the published formats),
processed twice (run 1 as TID 5200, a reprocess as TID 5300) and delivered to Orthanc: the SR
and overlays read back from the PACS show what the report decided, each value named, derived,
attributed and placed, withheld values only as sentences, runs told apart, and every object
valid with no dciodvfy error or warning.

The networks' numbers are meaningless here (random weights); what is checked is what reaches
the PACS and how it is written, against the node's own record of what it decided.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from ai.models.loader import sha256_file
from ai.phantom.study import generate_study
from echo_node.cli.importer import import_file
from echo_node.cli.jobs import job_detail
from echo_node.export.deliver import deliver_due
from echo_node.jobs import queue
from echo_node.node import Node
from echo_node.processing import run_job
from storage.models import Job, Study
from storage.queue import utc_now
from tests.all_models import EF_PERCENT as EF
from tests.all_models import all_models_store
from tests.conftest import require_tool
from tests.orthanc import Orthanc
from tests.test_processing import claim_next, make_node, measured_clips, stable_job, truth
from tests.test_results_data import dciodvfy, walk

# Two runs of a study through every network on a shared CPU: minutes, not the default 300 s.
# Orthanc holds the study every test reads.
pytestmark = [
    pytest.mark.peer,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.filterwarnings("error:The value length"),  # every value within its VR
]

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SC = "1.2.840.10008.5.1.4.1.1.7.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


@dataclass
class Study_:
    pacs: Orthanc
    phantom: Path
    root: Path
    models: Path
    records: dict[int, dict[str, Any]]  # job id -> `echo-node jobs show --json`
    jobs: tuple[int, int]  # run 1 (TID 5200), run 2 (reprocess, TID 5300)

    def held(self) -> dict[str, Dataset]:
        """Every instance Orthanc holds, by SOP Instance UID, as Orthanc serves it."""
        return {
            uid: pydicom.dcmread(io.BytesIO(self.pacs.file(uid)))
            for uid in self.pacs.sop_instance_uids()
        }

    def outputs(self, run: int, kind: str) -> list[Dataset]:
        record = self.records[self.jobs[run - 1]]
        held = self.held()
        return [held[o["sop_instance_uid"]] for o in record["outputs"] if o["kind"] == kind]

    def report_rows(self, run: int) -> list[dict[str, Any]]:
        return list(self.records[self.jobs[run - 1]]["report"])


def _record(node: Node, job_id: int) -> dict[str, Any]:
    with node.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        detail: dict[str, Any] = job_detail(session, job)
    detail["measured_clips"] = measured_clips(node, job_id)
    return detail


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, every_model_dir: Path) -> Iterator[Study_]:
    root = tmp_path_factory.mktemp("pacs")
    pacs = Orthanc(workdir=root / "orthanc").start()
    try:
        store = all_models_store(every_model_dir)
        phantom = root / "phantom"
        generate_study(phantom, 1, rows=240, columns=320, cycles=1, frame_rate=15.0)
        for path in sorted(phantom.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            ds.PatientSize, ds.PatientWeight = "1.72", "68"  # as a cart copies from the worklist
            ds.save_as(path)
        destinations = json.dumps([pacs.dimse_destination("pacs").model_dump(exclude_none=True)])
        node = make_node(root / "data", ECHO_NODE_DESTINATIONS=destinations)
        for path in sorted(phantom.glob("*.dcm")):
            assert import_file(node.ingestor, path).outcome == "stored"
        first = stable_job(node)
        outcome = run_job(node, first, store)
        assert outcome.state == "done", outcome.message
        deliver_due(node, "test")
        records = {first: _record(node, first)}
        node.engine.dispose()
        # A reprocess with the TID 5300 option: run 2 of the study.
        node = make_node(
            root / "data", ECHO_NODE_DESTINATIONS=destinations, ECHO_NODE_SR_TEMPLATE="5300"
        )
        with node.sessions.begin() as session:
            study_id = session.query(Study.id).scalar()
            queue.enqueue_reprocess(session, [study_id], utc_now(), None)
        second = claim_next(node)
        outcome = run_job(node, second, store)
        assert outcome.state == "done", outcome.message
        deliver_due(node, "test")
        records[second] = _record(node, second)
        node.engine.dispose()
        yield Study_(pacs, phantom, root, every_model_dir, records, (first, second))
    finally:
        pacs.kill()


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_every_object_orthanc_holds_validates_without_errors_or_warnings(study: Study_) -> None:
    for run in (1, 2):
        # One overlay per clip with a reported value: the Doppler clips (classical engine) and
        # the A4C clip (the EF network built to answer EF); the PLAX clip's are up to the weights.
        measured = study.records[study.jobs[run - 1]]["measured_clips"]
        assert len(measured) >= 3
        for kind, count in (("sr", 1), ("tid1500", 1), ("pdf", 1), ("sc", len(measured))):
            objects = study.outputs(run, kind)
            assert len(objects) == count, (run, kind)
            for number, ds in enumerate(objects):
                path = _save(ds, study.root / f"run{run}-{kind}{number}.dcm")
                assert dciodvfy(path) == ([], []), (run, kind)


def _nums(ds: Dataset) -> list[Dataset]:
    return [i for i in walk(ds.ContentSequence) if i.ValueType == "NUM"]


def _texts(ds: Dataset) -> list[str]:
    return [i.TextValue for i in walk(ds.ContentSequence) if i.ValueType == "TEXT"]


def test_only_reported_values_are_nums_and_withheld_ones_are_sentences(study: Study_) -> None:
    (sr,) = study.outputs(1, "sr")
    rows = study.report_rows(1)
    reported = [r for r in rows if r["decision"] == "reported"]
    withheld = [r for r in rows if r["decision"] == "withheld"]
    # Random weights give implausible 2D values: withheld, each said once, in words.
    assert {r["value"] for r in withheld} >= {"IVSd", "LVIDd", "LVPWd", "LVIDs"}
    texts = _texts(sr)
    for row in withheld:
        assert row["shown"] in texts
        assert "outside_physiological_range" in row["flags"]  # the flag is the record's
    # The classical Doppler engine's values and the (built) EF network's are reported.
    assert {"TR_Vmax", "MV_E", "MV_A", "LVEF"} <= {r["value"] for r in reported}
    written = {n.ConceptNameCodeSequence[0].CodeMeaning for n in _nums(sr)}
    assert "Interventricular Septum Diastolic Thickness" not in written
    assert {"Peak Blood Velocity", "Mitral Valve E-Wave Peak Velocity"} <= written
    assert float(_num(sr, "Left Ventricular Ejection Fraction by US").MeasuredValueSequence[0]
                 .NumericValue) == EF  # fmt: skip
    # NUMs: the reported values, the derived ones (E/A, TR PG) and the patient characteristics.
    assert len(_nums(sr)) == len(reported) + 2 + 4
    # No UIDs, flag names or commands in the document's words.
    for text in texts:
        assert not re.search(r"\d+(\.\d+){3,}", text) and "echo-node" not in text
        assert not any(flag in text for r in rows for flag in r["flags"]), text


def test_a_generic_sr_viewer_prints_each_name_beside_its_value(study: Study_) -> None:
    (sr,) = study.outputs(1, "sr")
    path = _save(sr, study.root / "viewer.dcm")
    out = study.root / "viewer.html"
    subprocess.run([require_tool("dsr2html"), str(path), str(out)], check=True)
    page = out.read_text(errors="replace")
    for num in _nums(sr):
        name = num.ConceptNameCodeSequence[0].CodeMeaning
        measured = num.MeasuredValueSequence[0]
        unit = measured.MeasurementUnitsCodeSequence[0].CodeValue
        shown = f'<span class="under">{measured.NumericValue} {unit}</span>'
        assert re.search(rf"<b>{re.escape(name)}:</b><br>\s*{re.escape(shown)}", page), name


def _children(num: Dataset) -> dict[str, list[Dataset]]:
    found: dict[str, list[Dataset]] = {}
    for child in num.ContentSequence:
        found.setdefault(child.ConceptNameCodeSequence[0].CodeValue, []).append(child)
    return found


def _num(sr: Dataset, meaning: str) -> Dataset:
    return next(n for n in _nums(sr) if n.ConceptNameCodeSequence[0].CodeMeaning == meaning)


def test_values_carry_derivation_calipers_per_beat_and_provenance(study: Study_) -> None:
    (sr,) = study.outputs(1, "sr")
    tr = _children(_num(sr, "Peak Blood Velocity"))
    assert tr["121401"][0].ConceptCodeSequence[0].CodeMeaning == "Maximum"
    scoords = tr["121112"]
    tr_uid = truth(study.phantom, "tr_cw")["sop_instance_uid"]
    assert len(scoords) >= 2 and {s.GraphicType for s in scoords} == {"POINT"}
    for scoord in scoords:
        image = scoord.ContentSequence[0].ReferencedSOPSequence[0]
        assert image.ReferencedSOPInstanceUID == tr_uid
    e = _children(_num(sr, "Mitral Valve E-Wave Peak Velocity"))
    assert e["121401"][0].ConceptCodeSequence[0].CodeMeaning == "Mean"
    assert e["111001"][0].TextValue == "classical-doppler"
    gradient = _children(_num(sr, "Peak Gradient"))
    assert "4 x (TR Vmax in m/s)^2" in gradient["112034"][0].TextValue
    velocity = float(_num(sr, "Peak Blood Velocity").MeasuredValueSequence[0].NumericValue)
    pg = float(_num(sr, "Peak Gradient").MeasuredValueSequence[0].NumericValue)
    assert pg == round(4 * (velocity / 100) ** 2)
    # Patient characteristics from the headers, BSA by DuBois from them.
    assert float(_num(sr, "Patient Height").MeasuredValueSequence[0].NumericValue) == 172
    assert float(_num(sr, "Patient Weight").MeasuredValueSequence[0].NumericValue) == 68
    bsa = float(_num(sr, "Body Surface Area").MeasuredValueSequence[0].NumericValue)
    assert bsa == round(0.007184 * 68**0.425 * 172**0.725, 2)
    assert _num(sr, "Heart rate")


def test_the_ai_value_names_its_exact_weights_and_its_caveat(study: Study_) -> None:
    """The EF (EchoNet-Dynamic, whose training statistics are not published) is reported with
    the checkpoint file's sha256, as not a published checkpoint, with its qualification on the
    value, as an AI estimate (TID 5300) and the mean of its per-beat predictions."""
    digest = sha256_file(study.models / "r2plus1d_18_32_2_pretrained.pt")
    caveat = "AI model input normalised with approximate statistics"
    for run in (1, 2):
        (sr,) = study.outputs(run, "sr")
        lvef = _children(_num(sr, "Left Ventricular Ejection Fraction by US"))
        assert lvef["111003"][0].TextValue == f"v1.0.0 sha256:{digest}"
        assert (
            lvef["111002"][0].TextValue == "no published digest is known for this model's weights"
        )
        assert lvef["111000"][0].ConceptCodeSequence[0].CodeMeaning == "Artificial Intelligence"
        assert lvef["121106"][0].TextValue.startswith(caveat)
        (equipment,) = [
            e for e in sr.ContributingEquipmentSequence if e.get("DeviceSerialNumber") == digest
        ]
        assert (
            equipment.SoftwareVersions == "v1.0.0" and digest in equipment.ContributionDescription
        )
    (sr,) = study.outputs(2, "sr")
    lvef = _children(_num(sr, "Left Ventricular Ejection Fraction by US"))
    assert lvef["125306"][0].ConceptCodeSequence[0].CodeMeaning == "Estimated"


def test_runs_are_told_apart_and_their_objects_reference_each_other(study: Study_) -> None:
    held = study.held()
    for run, template in ((1, "5200"), (2, "5300")):
        (sr,) = study.outputs(run, "sr")
        overlays = study.outputs(run, "sc")
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == template
        assert sr.SeriesNumber == 900 + 10 * run + 1
        assert sr.SeriesDescription.startswith(f"Echo Node report, run {run}")
        assert sr.SeriesDate and sr.SeriesTime
        listed = {
            sop.ReferencedSOPInstanceUID
            for series in sr.PertinentOtherEvidenceSequence[0].ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        }
        assert listed == {o.SOPInstanceUID for o in overlays} and listed <= set(held)
        for overlay in overlays:
            assert overlay.SeriesNumber == 900 + 10 * run + 2
            assert overlay.SeriesDescription == f"Echo Node overlays, run {run}"
            assert (
                overlay.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == sr.SOPInstanceUID
            )
    (second,) = study.outputs(2, "sr")
    assert second.SeriesDescription == "Echo Node report, run 2, supersedes run 1"
    (first,) = study.outputs(1, "sr")
    assert (
        second.PredecessorDocumentsSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID
        == first.SOPInstanceUID
    )
    classes = [ds.SOPClassUID for ds in held.values()]
    measured = sum(len(study.records[job]["measured_clips"]) for job in study.jobs)
    # Per run: the echo SR and its TID 1500 copy, the overlays, the PDF.
    assert classes.count(COMPREHENSIVE_SR) == 4 and classes.count(SC) == measured
    assert classes.count(ENCAPSULATED_PDF) == 2


def test_tid_5300_attributes_each_value_to_its_algorithm(study: Study_) -> None:
    (sr,) = study.outputs(2, "sr")
    root_devices = [
        i for i in sr.ContentSequence
        if i.RelationshipType == "HAS OBS CONTEXT" and i.ValueType == "UIDREF"
    ]  # fmt: skip
    assert len(root_devices) == 1  # the node; algorithms are on their own values
    groups = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "125301"]
    assert groups
    for group in groups:
        kinds = {i.ConceptNameCodeSequence[0].CodeValue for i in group.ContentSequence}
        assert {"121012", "111001", "111003"} <= kinds  # observer UID, algorithm name, version
    assert "125316" not in str(sr)  # nothing is "Directly measured" from an AI estimate
