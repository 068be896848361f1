"""run_job: one claimed job from the study's instances to stored, queued results.

Three phases so that one process never holds the SQLite write lock while models run:
read what is needed (short session) → compute with no session open (clip by clip: decode, view,
pipelines; then each clip's overlay and the SR; each object staged in tmp/, checked and hashed,
with no row yet) → the outputs linked under their final names and one short transaction with their
instance rows, the clips, findings, outputs, deliveries and the superseded earlier SR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ai.findings import ClipResult
from ai.model_source import ModelSource
from echo_node.export.queue import queue_deliveries
from echo_node.jobs.outcome import JobOutcome, TransientJobError
from echo_node.jobs.selection import processable_instances
from echo_node.node import Node
from echo_node.processing.analysis import ClipInput, ClipRun, analyse_clip
from echo_node.processing.carry import earlier_results, merge
from echo_node.processing.classifier import view_classifier
from echo_node.processing.documents import (
    MEASUREMENT_REPORT,
    Frames,
    earlier_document,
    key_frames,
    write_documents,
)
from echo_node.processing.outputs import (
    OverlaySeries,
    Run,
    StoredOutput,
    discard,
    study_report,
    write_sr,
)
from echo_node.processing.progress import Progress
from echo_node.processing.record import (
    record_clips,
    record_outputs,
    supersede_documents,
    supersede_reports,
)
from echo_node.processing.summary import nothing_measured, pipelines_failed
from storage.index import find_version
from storage.models import Job, Output, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Plan:
    job_id: int
    study_id: int
    study_uid: str
    only: tuple[str, ...] | None  # a reprocess limited to these pipelines
    clips: list[ClipInput]
    predecessor: Path | None  # the study's latest SR written by an earlier job
    written: int  # outputs this job already has (an attempt that got that far)
    run: int  # this job's run of the study: 1 + the earlier jobs that wrote an SR
    # For a reprocess limited by `only`: each clip's latest earlier result, to carry forward.
    earlier: dict[str, ClipResult]
    # The study's latest TID 1500 document by an earlier job (superseded by this one's).
    earlier_measurement_report: Path | None = None
    qa: bool = False  # a self-test study: its results go to no destination


def run_job(node: Node, job_id: int, models: ModelSource | None) -> JobOutcome:
    """Process the study of job `job_id` (already claimed by the caller) and say how it went.

    Returns done (SR and overlays stored, deliveries queued) or skipped (nothing measurable,
    with the reason). Raises TransientJobError for faults worth a retry; anything else is a
    failure with its text.
    """
    try:
        plan = _read_plan(node, job_id)
    except OperationalError as error:  # database busy or gone for a moment
        raise TransientJobError(f"reading job {job_id}: {error}") from error
    if plan.written:
        # An earlier attempt committed its results and died before the worker recorded it.
        return JobOutcome("done", f"results already written by this job ({plan.written})")
    if not plan.clips:
        return JobOutcome("skipped", "no processable instance in the study")

    stored: list[StoredOutput] = []
    try:
        return _compute_and_write(node, plan, models, stored)
    except BaseException:
        # Nothing of a failed run enters the study: its staged files go (a crash instead
        # leaves them in tmp/, which is cleared at start).
        discard(stored)
        raise


def _compute_and_write(
    node: Node, plan: _Plan, models: ModelSource | None, stored: list[StoredOutput]
) -> JobOutcome:
    """Analyse every clip, stage the overlays and the SR (into `stored`, so the caller can
    discard them on failure) and record the run."""
    classifier = view_classifier(models)
    runs: list[ClipRun] = []
    analysed: list[ClipRun] = []  # clips whose pipelines ran now and found something
    steps: list[dict[str, Any]] = []
    frames: dict[str, Frames] = {}  # the frames the PDF report shows, per clip
    progress = Progress(node, plan.job_id, len(plan.clips))
    for clip in plan.clips:
        progress.next_clip()
        run = analyse_clip(
            clip,
            models,
            classifier,
            node.settings.min_view_confidence,
            plan.only,
            on_step=progress.step,
        )
        if run.frames is not None:
            analysed.append(run)
        if plan.only is not None:
            run.result = merge(run.result, plan.earlier.get(clip.sop_instance_uid), plan.only)
        steps += run.steps
        frames[clip.sop_instance_uid] = key_frames(run)
        # The frames are let go: a study's clips are never all held decoded together.
        run.frames = None
        runs.append(run)
    measured = [run for run in runs if run.measured]
    if not measured:
        failures = pipelines_failed(runs)
        if failures:
            raise RuntimeError(failures)
        reason = nothing_measured(runs)
        _write(node, plan, runs, [])
        logger.info(
            "job skipped: %s",
            reason,
            extra={"job_id": plan.job_id, "study_instance_uid": plan.study_uid},
        )
        return JobOutcome("skipped", reason, steps)

    # Overlays print only what the study's report reports, known once every clip is analysed.
    # Clips carried over from an earlier run keep their earlier overlays.
    overlays, report_model = OverlaySeries(node, Run(plan.run)), study_report(runs)
    for run in analysed:
        progress.step("overlay")
        overlay = overlays.write(run, report_model, steps)
        if overlay is not None:
            stored.append(overlay)
    progress.step("sr")
    predecessor = _predecessor(plan.predecessor)
    overlay_count = len(stored)
    report = write_sr(node, runs, predecessor, steps, overlays.run, overlays.written)
    stored.insert(0, report)
    documents = write_documents(
        node, runs, frames, report, plan.earlier_measurement_report, steps, overlays.run
    )
    stored.extend(documents)
    _write(node, plan, runs, stored)
    message = (
        f"{len(runs)} clip(s), {len(measured)} measured: SR {report.sop_instance_uid}"
        f" and {overlay_count} overlay(s)"
        + (f", superseding SR {predecessor.SOPInstanceUID}" if predecessor is not None else "")
        + "".join(f", {item.kind} {item.sop_instance_uid}" for item in documents)
    )
    logger.info(
        "job done: %d clip(s), %d measured, %d overlay(s), %d other document(s)",
        len(runs),
        len(measured),
        overlay_count,
        len(documents),
        extra={
            "job_id": plan.job_id,
            "study_instance_uid": plan.study_uid,
            "sr_sop_instance_uid": report.sop_instance_uid,
        },
    )
    return JobOutcome("done", message, steps)


def _read_plan(node: Node, job_id: int) -> _Plan:
    with node.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        study = session.get(Study, job.study_id)
        assert study is not None  # foreign key
        instances = processable_instances(session, job.study_id, node.settings)
        clips = [ClipInput(i.id, i.sop_instance_uid, node.store.root / i.path) for i in instances]
        earlier = session.scalars(
            select(Output)
            .where(Output.study_id == job.study_id, Output.kind == "sr", Output.job_id != job_id)
            .order_by(Output.id.desc())
            .limit(1)
        ).first()
        written = session.scalar(select(func.count(Output.id)).where(Output.job_id == job_id))
        earlier_runs = session.scalar(
            select(func.count(func.distinct(Output.job_id))).where(
                Output.study_id == job.study_id, Output.kind == "sr", Output.job_id != job_id
            )
        )
        only = (
            tuple(p.strip() for p in job.pipelines.split(",") if p.strip())
            if job.pipelines
            else None
        )
        return _Plan(
            job_id=job_id,
            study_id=job.study_id,
            study_uid=study.study_instance_uid,
            only=only,
            clips=clips,
            predecessor=node.store.root / earlier.instance.path if earlier else None,
            written=int(written or 0),
            run=int(earlier_runs or 0) + 1,
            earlier=earlier_results(session, job.study_id, job_id) if only is not None else {},
            earlier_measurement_report=_path(
                node, earlier_document(session, job.study_id, job_id, MEASUREMENT_REPORT)
            ),
            qa=study.qa,
        )


def _path(node: Node, stored: str | None) -> Path | None:
    return node.store.root / stored if stored is not None else None


def _predecessor(path: Path | None) -> Dataset | None:
    """The earlier SR's header, read from its stored file (its UIDs go in the new SR)."""
    if path is None:
        return None
    return pydicom.dcmread(path, stop_before_pixels=True)


def _write(node: Node, plan: _Plan, runs: list[ClipRun], stored: list[StoredOutput]) -> None:
    """Outputs under their final names, then clips, findings, outputs' rows, deliveries and
    the superseded SR in one short transaction."""
    try:
        # Inside the try: a link that fails part-way leaves no linked file unrecorded either.
        for item in stored:
            node.store.commit_instance(item.staged.temp, item.staged.target)
        with node.sessions.begin() as session:
            record_clips(session, plan.job_id, runs)
            outputs = record_outputs(session, plan.job_id, plan.study_id, stored)
            destinations = () if plan.qa else node.settings.destinations
            for output in outputs:
                queue_deliveries(session, output, destinations)
            if any(item.kind == "sr" for item in stored):
                supersede_reports(session, plan.job_id, plan.study_id)
                supersede_documents(session, plan.job_id, plan.study_id)
    except BaseException as error:
        _unlink_unrecorded(node, stored)
        if isinstance(error, OperationalError):
            raise TransientJobError(f"recording job {plan.job_id}: {error}") from error
        raise
    for item in stored:  # in the study now: counted as the node's own instances
        node.ingestor.metrics.ingested("node", "stored", item.staged.receipt.size, None)


def _unlink_unrecorded(node: Node, stored: list[StoredOutput]) -> None:
    """After a failed closing transaction, remove the output files it did not record.

    Checked rather than assumed: a commit whose acknowledgement was lost may have landed, and
    a recorded file must stay. If the database cannot say, the files stay (orphans that
    `echo-node doctor` reports) rather than risk an indexed instance without its file.
    """
    try:
        with node.sessions() as session:
            for item in stored:
                header, receipt = item.staged.header, item.staged.receipt
                if find_version(session, header.sop_instance_uid, receipt.sha256) is None:
                    item.staged.target.unlink(missing_ok=True)
    except SQLAlchemyError:
        logger.warning("job outputs left unindexed on disk: the database did not answer")
