"""The job's record in the database: clips, findings, outputs, deliveries, superseded SRs.

Everything here runs inside the caller's one short transaction, after the computing is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ai.findings import ClipResult, PipelineStatus
from ai.result_json import result_to_json
from echo_node.processing.analysis import ClipRun
from echo_node.processing.outputs import StoredOutput
from echo_node.results.report import SourceClip, build_report, decisions
from storage.index import add_instance
from storage.models import CLIP_RESULT_KEY, FindingRow, JobClip, Output


def record_clips(session: Session, job_id: int, runs: Sequence[ClipRun]) -> None:
    """What the job decided about each clip and every value it measured.

    An earlier attempt of the same job may have left rows (a run taken over after its lease
    expired): they are replaced, so a job has one record of its last attempt.
    """
    session.execute(delete(FindingRow).where(FindingRow.job_id == job_id))
    session.execute(delete(JobClip).where(JobClip.job_id == job_id))
    # What the report made of each value (reported, withheld and why, with the flag names):
    # the operator's side of the SR's sentences.
    fate: dict[str, list[dict[str, Any]]] = {}
    for made in decisions(build_report([SourceClip(r.header, r.result) for r in runs])):
        fate.setdefault(made.sop_instance_uid, []).append(asdict(made))
    for run in runs:
        decision = run.result.view
        session.add(
            JobClip(
                job_id=job_id,
                instance_id=run.source.instance_id,
                sop_instance_uid=run.source.sop_instance_uid,
                view=decision.view.value,
                decided_by=decision.decided_by[:64],
                confidence=float(decision.confidence),
                detail={**_detail(run.result), "report": fate.get(run.source.sop_instance_uid, [])},
            )
        )
        for pipeline in run.result.pipelines:
            if pipeline.status is not PipelineStatus.OK:
                continue
            for finding in pipeline.findings:
                provenance = finding.provenance
                session.add(
                    FindingRow(
                        job_id=job_id,
                        sop_instance_uid=run.source.sop_instance_uid,
                        pipeline=pipeline.pipeline[:32],
                        name=finding.name[:32],
                        value=float(finding.value),
                        unit=finding.unit[:16],
                        frame=finding.frames[0] if finding.frames else None,
                        model_name=provenance.name[:64],
                        model_version=provenance.version[:64],
                        model_sha256=provenance.sha256,
                    )
                )


def _detail(result: ClipResult) -> dict[str, Any]:
    decision = result.view
    return {
        CLIP_RESULT_KEY: result_to_json(result),
        "reason": decision.reason,
        "label": decision.label,
        "doppler_mode": decision.doppler_mode,
        "message": result.message,
        "frame_count": result.frame_count,
        "pipelines": [
            {"pipeline": p.pipeline, "status": p.status.value, "message": p.message}
            for p in result.pipelines
        ],
    }


def record_outputs(
    session: Session, job_id: int, study_id: int, stored: Sequence[StoredOutput]
) -> list[Output]:
    """The instance row of each output (its file already under its final name) and its
    Output row, in the job's one transaction: the study never shows half a run."""
    now = datetime.now(UTC)
    outputs = []
    for item in stored:
        instance = add_instance(session, item.staged.header, item.staged.receipt)
        output = Output(
            job_id=job_id,
            study_id=study_id,
            instance_id=instance.id,
            kind=item.kind,
            sop_instance_uid=item.sop_instance_uid,
            created_at=now,
        )
        session.add(output)
        outputs.append(output)
    session.flush()  # ids for the deliveries
    return outputs


def supersede_reports(session: Session, job_id: int, study_id: int) -> int:
    """Mark the study's earlier SRs as replaced by this job's; they stay stored and listed."""
    result = session.execute(
        update(Output)
        .where(
            Output.study_id == study_id,
            Output.kind == "sr",
            Output.job_id != job_id,
            Output.superseded_by_job_id.is_(None),
        )
        .values(superseded_by_job_id=job_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def supersede_documents(session: Session, job_id: int, study_id: int) -> int:
    """Mark the study's earlier TID 1500 documents and PDF reports as replaced by this job's
    report: a run that writes none (nothing left to draw) still makes theirs out of date."""
    result = session.execute(
        update(Output)
        .where(
            Output.study_id == study_id,
            Output.kind.in_(("tid1500", "pdf")),
            Output.job_id != job_id,
            Output.superseded_by_job_id.is_(None),
        )
        .values(superseded_by_job_id=job_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)
