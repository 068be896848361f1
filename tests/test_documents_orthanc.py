"""A phantom study with every model installed (random weights), processed and delivered to
Orthanc by C-STORE: the echo SR, its TID 1500 copy and the PDF report arrive in the study, and
what Orthanc serves back is what the node wrote, valid and readable.

Random weights give values no heart has, which the report withholds: the PDF must then say so
value by value, while the classical Doppler engine's values (real, from the phantom's spectra)
are reported, drawn in the TID 1500 copy and printed in the PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
from pydicom.filebase import DicomBytesIO

from ai.phantom.study import generate_study
from echo_node.cli.importer import import_file
from echo_node.export.deliver import deliver_pass
from echo_node.processing import run_job
from tests.all_models import all_models_store
from tests.orthanc import Orthanc, orthanc_factory  # noqa: F401
from tests.test_processing import (
    make_node,
    measured_clips,
    output_path,
    outputs_of,
    stable_job,
)
from tests.test_results_data import dciodvfy, dsrdump
from tests.test_results_pdf import text_of

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def test_every_model_phantom_study_round_trips_through_orthanc(
    tmp_path: Path,
    every_model_dir: Path,
    orthanc_factory: Any,  # noqa: F811
) -> None:
    models = all_models_store(every_model_dir)
    phantom = tmp_path / "phantom"
    generate_study(phantom, 1, rows=240, columns=320, cycles=1, frame_rate=20.0)
    pacs: Orthanc = orthanc_factory().start()
    destination = pacs.dimse_destination("pacs").model_dump_json(exclude_none=True)
    node = make_node(tmp_path / "data", ECHO_NODE_DESTINATIONS=f"[{destination}]")
    try:
        for path in sorted(phantom.glob("*.dcm")):
            assert import_file(node.ingestor, path).outcome == "stored"
        job_id = stable_job(node)
        outcome = run_job(node, job_id, models)
        assert outcome.state == "done", outcome.message
        outputs = {o.sop_instance_uid: o for o in outputs_of(node, job_id)}
        measured = measured_clips(node, job_id)
        assert len(measured) >= 2  # the classical Doppler engine's clips, whatever the weights
        assert sorted(o.kind for o in outputs.values()) == [
            "pdf",
            *["sc"] * len(measured),  # one overlay per clip with a reported value
            "sr",
            "tid1500",
        ]
        reports = deliver_pass(node, "test")
        assert sorted(r.sop_instance_uid for r in reports) == sorted(outputs)
        assert {r.state for r in reports} == {"sent"}, reports

        by_kind = {o.kind: uid for uid, o in outputs.items()}
        for uid, output in outputs.items():
            # Orthanc serves back the dataset the node stored (its own file meta aside).
            received = pydicom.dcmread(DicomBytesIO(pacs.file(uid)))
            assert received == pydicom.dcmread(output_path(node, output)), output.kind
        classes = {
            kind: pydicom.dcmread(DicomBytesIO(pacs.file(uid)), stop_before_pixels=True).SOPClassUID
            for kind, uid in by_kind.items()
        }
        assert classes["sr"] == classes["tid1500"] == COMPREHENSIVE_SR
        assert classes["pdf"] == ENCAPSULATED_PDF

        copy = tmp_path / "tid1500.dcm"
        copy.write_bytes(pacs.file(by_kind["tid1500"]))
        assert dciodvfy(copy)[0] == []
        assert "Tricuspid regurgitation Vmax" in dsrdump(copy)
        groups = hd.sr.srread(copy).content.get_image_measurement_groups()
        drawn = {m.name.meaning for g in groups for m in g.get_measurements()}
        assert {"Tricuspid regurgitation Vmax", "Mitral valve E-wave Vmax"} <= drawn

        encapsulated = pydicom.dcmread(DicomBytesIO(pacs.file(by_kind["pdf"])))
        pdf = encapsulated.EncapsulatedDocument[: encapsulated.EncapsulatedDocumentLength]
        (tmp_path / "report.pdf").write_bytes(pdf)  # kept with the test's files to look at
        text = text_of(pdf)
        assert "TR Vmax" in text and "Not reported, and why" in text
        # Random weights: the models' values are withheld, each with its reason in the PDF.
        assert "not reported: outside physiological limits." in text
    finally:
        node.engine.dispose()
