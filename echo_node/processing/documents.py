"""The run's documents for viewers and readers beside the echo SR: the TID 1500 Measurement
Report (OHIF draws its calipers on the clips) and the encapsulated PDF report.

Both print the report model (echo_node/results/report.py) of the same clip results as the SR,
and are staged like the SR and the overlays (outputs.py): they enter the study only in the
job's closing transaction, so a failed job leaves none of them. A study with no value to draw
gets no TID 1500 document; a PDF larger than `pdf_max_bytes` is not written (logged).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from ai.findings import PipelineStatus
from echo_node.node import Node
from echo_node.processing.analysis import ClipRun
from echo_node.processing.outputs import Run, StoredOutput, device_info, discard, store
from echo_node.results import pdflayout
from echo_node.results.pdfcontent import ClipPictures, build_content
from echo_node.results.pdfdicom import build_encapsulated_pdf
from echo_node.results.report import Report, SourceClip, build_report
from echo_node.results.series import measurements_series, pdf_series
from echo_node.results.tid1500 import build_measurement_report
from storage.models import Output

logger = logging.getLogger(__name__)

MEASUREMENT_REPORT = "tid1500"
PDF = "pdf"
KINDS = (MEASUREMENT_REPORT, PDF)
# Frames kept per clip for the PDF's pictures: a finding's frames are its beats (a few).
_KEPT_PER_CLIP = 12

Frames = dict[int, npt.NDArray[np.uint8]]


def key_frames(run: ClipRun) -> Frames:
    """The frames the clip's findings were measured on, kept before the clip's frames go."""
    if run.frames is None:
        return {}
    wanted: list[int] = []
    for pipeline in run.result.pipelines:
        if pipeline.status is not PipelineStatus.OK:
            continue
        for finding in pipeline.findings:
            for frame in (*finding.frames, *(beat.frame for beat in finding.beats)):
                if frame not in wanted and 0 <= frame < len(run.frames):
                    wanted.append(frame)
    return {frame: run.frames[frame].copy() for frame in wanted[:_KEPT_PER_CLIP]}


def earlier_document(session: Session, study_id: int, job_id: int, kind: str) -> str | None:
    """The stored path of the study's latest document of `kind` from an earlier job."""
    earlier = session.scalars(
        select(Output)
        .where(Output.study_id == study_id, Output.kind == kind, Output.job_id != job_id)
        .order_by(Output.id.desc())
        .limit(1)
    ).first()
    return earlier.instance.path if earlier is not None else None


def write_documents(
    node: Node,
    runs: Sequence[ClipRun],
    frames: dict[str, Frames],
    echo_sr: StoredOutput,
    predecessor: Path | None,
    steps: list[dict[str, Any]],
    run: Run | None = None,
) -> list[StoredOutput]:
    """Stage the TID 1500 document and the PDF the settings ask for (see the module doc), in
    the series of `run` (run 1 when not given)."""
    run = run or Run(1)
    settings = node.settings
    report = build_report([SourceClip(run.header, run.result) for run in runs])
    headers = [run.header for run in runs]
    makers: list[tuple[str, Callable[[], Dataset | None]]] = []
    if settings.measurement_report:
        makers.append(
            (
                MEASUREMENT_REPORT,
                lambda: _measurement_report(node, report, headers, echo_sr, predecessor, run),
            )
        )
    if settings.pdf_report:
        pictures = [
            ClipPictures(run.header, run.result, frames.get(run.source.sop_instance_uid, {}))
            for run in runs
        ]
        makers.append((PDF, lambda: _pdf(node, report, pictures, headers, run)))
    written: list[StoredOutput] = []
    try:
        for kind, make in makers:
            started = time.perf_counter()
            dataset = make()
            if dataset is not None:
                written.append(_staged(node, dataset, kind, started, steps))
    except BaseException:
        discard(written)  # the caller knows only what is returned
        raise
    return written


def _measurement_report(
    node: Node,
    report: Report,
    headers: Sequence[Dataset],
    echo_sr: StoredOutput,
    predecessor: Path | None,
    run: Run,
) -> Dataset | None:
    return build_measurement_report(
        report,
        headers,
        node=device_info(node.settings),
        echo_sr=pydicom.dcmread(echo_sr.staged.temp, stop_before_pixels=True),
        predecessor=(
            pydicom.dcmread(predecessor, stop_before_pixels=True)
            if predecessor is not None
            else None
        ),
        series=measurements_series(run.number, run.started),
    )


def _pdf(
    node: Node,
    report: Report,
    pictures: Sequence[ClipPictures],
    headers: Sequence[Dataset],
    run: Run,
) -> Dataset | None:
    settings = node.settings
    now = datetime.datetime.now(datetime.UTC).astimezone()
    info = device_info(settings)
    content = build_content(
        report, pictures, software=info.software_version, created=now.strftime("%Y-%m-%d %H:%M")
    )
    pdf = pdflayout.render(content)
    study_uid = str(headers[0].StudyInstanceUID)
    if len(pdf) > settings.pdf_max_bytes:
        logger.warning(
            "PDF report larger than pdf_max_bytes: not written",
            extra={
                "study_instance_uid": study_uid,
                "bytes": len(pdf),
                "pdf_max_bytes": settings.pdf_max_bytes,
            },
        )
        return None
    return build_encapsulated_pdf(
        pdf, headers, node=info, series=pdf_series(run.number, run.started), now=now
    )


def _staged(
    node: Node, dataset: Dataset, kind: str, started: float, steps: list[dict[str, Any]]
) -> StoredOutput:
    stored = store(node, dataset, kind)
    seconds = round(time.perf_counter() - started, 4)
    steps.append({"step": kind, "sop_instance_uid": stored.sop_instance_uid, "seconds": seconds})
    return stored
