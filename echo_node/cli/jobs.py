"""`echo-node jobs`: the processing queue — list, show one (every step), retry."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from echo_node.cli.context import state
from echo_node.jobs import queue
from storage.models import CLIP_RESULT_KEY, Delivery, FindingRow, Job, JobClip, Output, Study
from storage.queue import utc_now

app = typer.Typer(help="The processing queue: list jobs, show one, retry one.")


def _summary(job: Job, study_uid: str) -> dict[str, Any]:
    seconds = None
    if job.started_at and job.finished_at:
        seconds = round((job.finished_at - job.started_at).total_seconds(), 2)
    return {
        "id": job.id,
        "study_instance_uid": study_uid,
        "state": job.state,
        "reason": job.reason,
        "pipelines": job.pipelines,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "seconds": seconds,
        "message": job.message,
        "error": job.error,
        "priority": job.priority,
        "progress": job.progress if job.state == queue.RUNNING else None,
    }


def describe_progress(progress: dict[str, Any] | None, now: datetime) -> str:
    """ "clip 3/60 pipeline:plax, about 2 min 10 s left" (the estimate aged to now)."""
    if not progress:
        return ""
    text = f"clip {progress['clip']}/{progress['clips']} {progress['step']}"
    left = progress.get("estimated_left_s")
    if left is None:
        return text
    updated = datetime.fromisoformat(progress["updated_at"])
    remaining = max(0.0, float(left) - (now - updated).total_seconds())
    minutes, seconds = divmod(round(remaining), 60)
    return f"{text}, about {f'{minutes} min ' if minutes else ''}{seconds} s left"


@app.callback(invoke_without_command=True)
def list_jobs(
    ctx: typer.Context,
    job_state: Annotated[
        str | None,
        typer.Option("--state", help=f"Only jobs in this state: {', '.join(queue.STATES)}."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(help="Most recent jobs to list.")] = 50,
) -> None:
    """List jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if job_state is not None and job_state not in queue.STATES:
        raise typer.BadParameter(f"state must be one of {', '.join(queue.STATES)}")
    node = state(ctx).reader()
    query = select(Job, Study.study_instance_uid).join(Study).order_by(Job.id.desc()).limit(limit)
    if job_state:
        query = query.where(Job.state == job_state)
    with node.sessions() as session:
        rows = [_summary(job, uid) for job, uid in session.execute(query)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "id", "state", "reason", "tries", "created", "s", "study UID", "progress / message / error"
    )
    now = utc_now()
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["state"],
            row["reason"],
            str(row["attempts"]),
            row["created_at"][:19],
            str(row["seconds"] or ""),
            row["study_instance_uid"],
            describe_progress(row["progress"], now) or row["error"] or row["message"] or "",
        )
    Console().print(table)


def job_detail(session: Session, job: Job) -> dict[str, Any]:
    detail = _summary(job, job.study.study_instance_uid)
    detail["steps"] = job.steps
    detail["clips"] = [
        {
            "sop_instance_uid": clip.sop_instance_uid,
            "view": clip.view,
            "decided_by": clip.decided_by,
            "confidence": clip.confidence,
            # The whole result on record is for carrying forward; its values are listed below,
            # and what the report made of them under "report".
            **{
                key: value
                for key, value in clip.detail.items()
                if key not in (CLIP_RESULT_KEY, "report")
            },
        }
        for clip in session.scalars(select(JobClip).where(JobClip.job_id == job.id))
    ]
    detail["findings"] = [
        {
            "sop_instance_uid": row.sop_instance_uid,
            "pipeline": row.pipeline,
            "name": row.name,
            "value": row.value,
            "unit": row.unit,
            "frame": row.frame,
            "model": f"{row.model_name} {row.model_version}",
        }
        for row in session.scalars(select(FindingRow).where(FindingRow.job_id == job.id))
    ]
    detail["report"] = [
        row
        for clip in session.scalars(select(JobClip).where(JobClip.job_id == job.id))
        for row in clip.detail.get("report", [])
    ]
    outputs = session.scalars(select(Output).where(Output.job_id == job.id)).all()
    detail["outputs"] = [
        {
            "kind": output.kind,
            "sop_instance_uid": output.sop_instance_uid,
            "superseded_by_job_id": output.superseded_by_job_id,
            "deliveries": [
                {
                    "destination": d.destination,
                    "state": d.state,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                }
                for d in session.scalars(select(Delivery).where(Delivery.output_id == output.id))
            ],
        }
        for output in outputs
    ]
    return detail


@app.command("show")
def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="The job's id (see `echo-node jobs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Everything about one job: steps and timings, clips and views, findings, what the report
    made of each (reported, withheld and why, with the flags), outputs."""
    node = state(ctx).reader()
    with node.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            typer.echo(f"no job {job_id}", err=True)
            raise typer.Exit(1)
        detail = job_detail(session, job)
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return
    console = Console()
    for key in (
        "id",
        "study_instance_uid",
        "state",
        "reason",
        "pipelines",
        "attempts",
        "created_at",
        "finished_at",
        "seconds",
        "message",
        "error",
        "priority",
    ):
        console.print(f"[bold]{key}[/bold]: {detail[key]}")
    if detail["progress"]:
        console.print(f"[bold]progress[/bold]: {describe_progress(detail['progress'], utc_now())}")
    _table(console, "steps", detail["steps"])
    _table(console, "clips", detail["clips"])
    _table(console, "findings", detail["findings"])
    _table(
        console,
        "report",
        [{**row, "flags": ", ".join(row["flags"])} for row in detail["report"]],
    )
    _table(
        console,
        "outputs",
        [
            {k: v for k, v in o.items() if k != "deliveries"}
            | {"deliveries": ", ".join(f"{d['destination']}:{d['state']}" for d in o["deliveries"])}
            for o in detail["outputs"]
        ],
    )


def _table(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    console.print(table)


@app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="A failed or skipped job's id.")],
) -> None:
    """Put a finished job back in the queue with fresh attempts."""
    node = state(ctx).node()
    with node.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            typer.echo(f"no job {job_id}", err=True)
            raise typer.Exit(1)
        if job.state in (queue.QUEUED, queue.RUNNING, queue.RETRIEVING):
            typer.echo(f"job {job_id} is {job.state}; nothing to retry", err=True)
            raise typer.Exit(1)
        queue.retry_job(session, job, utc_now())
    typer.echo(f"job {job_id} queued again")
