"""A phantom study processed with every model installed (random weights in the published
formats): the node writes an overlay exactly for the clips the report has values from, each
overlay is the report's values drawn (pixel for pixel), and dciodvfy has nothing to say.

Random weights give values the report mostly withholds; which ones depends on the CPU, so the
test checks the overlays against the report of the job's own recorded results, never against
a number a random network computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from ai.decode import load_clip
from ai.phantom.study import generate_study
from ai.result_json import result_from_json
from echo_node.cli.importer import import_file
from echo_node.processing import run_job
from echo_node.results import plan_for, render_for
from echo_node.results.report import SourceClip, build_report
from storage.models import CLIP_RESULT_KEY, JobClip
from tests.all_models import all_models_store
from tests.test_processing import make_node, output_path, outputs_of, stable_job
from tests.test_results_data import dciodvfy


@pytest.mark.peer
def test_overlays_print_what_the_report_reports_with_every_model_installed(
    tmp_path: Path, every_model_dir: Path
) -> None:
    phantom = tmp_path / "phantom"
    paths = generate_study(phantom, 4, rows=240, columns=320, cycles=1, frame_rate=15.0)
    node = make_node(tmp_path / "data", ECHO_NODE_OVERLAY_JPEG="false")
    try:
        for path in paths:
            assert import_file(node.ingestor, path).outcome == "stored"
        job_id = stable_job(node)
        outcome = run_job(node, job_id, all_models_store(every_model_dir))
        assert outcome.state == "done", outcome.message
        with node.sessions() as session:
            recorded = {
                uid: result_from_json(detail[CLIP_RESULT_KEY])
                for uid, detail in session.execute(
                    select(JobClip.sop_instance_uid, JobClip.detail).where(JobClip.job_id == job_id)
                )
            }
        headers = {}
        files = {}
        for path in paths:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            headers[str(header.SOPInstanceUID)], files[str(header.SOPInstanceUID)] = header, path
        assert set(recorded) == set(headers)
        report = build_report([SourceClip(headers[uid], recorded[uid]) for uid in headers])
        overlays = {}
        for output in outputs_of(node, job_id):
            if output.kind == "sc":
                back = pydicom.dcmread(output_path(node, output))
                overlays[str(back.SourceImageSequence[0].ReferencedSOPInstanceUID)] = (
                    back,
                    output_path(node, output),
                )
        # One overlay per clip with a reported value, none for the others.
        assert set(overlays) == {v.source.sop_instance_uid for v in report.values}
        assert overlays  # the classical Doppler engine measures the phantom's TR and E/A
        for uid, (back, path) in overlays.items():
            errors, warnings = dciodvfy(path)
            assert (errors, warnings) == ([], []), uid
            decoded = load_clip(files[uid])
            frames = np.stack([decoded.frames[i] for i in range(len(decoded))])
            plan = plan_for(headers[uid], report, frame_time_ms=decoded.frame_time_ms)
            expected = render_for(headers[uid], frames, plan)
            shown = back.pixel_array if back.pixel_array.ndim == 4 else back.pixel_array[None]
            assert np.array_equal(shown, expected.frames), uid
            values = report.values_of(uid)
            derived = [d for d in report.derived if d.inputs and all(i in values for i in d.inputs)]
            assert [e.display for e in plan.entries] == [v.display for v in (*values, *derived)]
            assert not any("_" in item.text for item in expected.legend)  # no internal names
            if plan.calipers:
                frame = int(back.RepresentativeFrameNumber) - 1
                assert plan.calipers_on(frame)
    finally:
        node.engine.dispose()
