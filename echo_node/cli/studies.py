"""`echo-node studies` and `echo-node status`: what the node holds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from echo_node import overview
from echo_node.cli.context import state
from storage.models import Instance, Series, Study


@dataclass(frozen=True)
class StudyLine:
    study_instance_uid: str
    study_date: str | None
    modalities: str
    instances: int
    size_bytes: int
    last_received_at: str
    patient_name: str | None = None
    patient_id: str | None = None


def studies(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    show_phi: Annotated[
        bool, typer.Option("--show-phi", help="Also show patient name and ID.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Most recent studies to list.")] = 100,
) -> None:
    """One line a study: date, modality, instances, size, study UID."""
    node = state(ctx).reader()
    query = (
        select(
            Study,
            func.count(Instance.id),
            func.coalesce(func.sum(Instance.size), 0),
        )
        .join(Series, Series.study_id == Study.id)
        .join(Instance, Instance.series_id == Series.id)
        .group_by(Study.id)
        .order_by(Study.last_received_at.desc())
        .limit(limit)
    )
    lines = []
    with node.sessions() as session:
        modalities = _modalities_by_study(session)
        for study, count, size in session.execute(query):
            lines.append(
                StudyLine(
                    study_instance_uid=study.study_instance_uid,
                    study_date=study.study_date,
                    modalities=modalities.get(study.id, ""),
                    instances=int(count),
                    size_bytes=int(size),
                    last_received_at=study.last_received_at.isoformat(),
                    patient_name=study.patient_name if show_phi else None,
                    patient_id=study.patient_id if show_phi else None,
                )
            )
    if as_json:
        rows = [asdict(line) for line in lines]
        if not show_phi:
            for row in rows:
                del row["patient_name"], row["patient_id"]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("date", "modality", "instances", "size")
    table.add_column("study UID", overflow="fold")
    if show_phi:
        table.add_column("patient name")
        table.add_column("patient ID")
    for line in lines:
        cells = [
            line.study_date or "",
            line.modalities,
            str(line.instances),
            _human_size(line.size_bytes),
            line.study_instance_uid,
        ]
        if show_phi:
            cells += [line.patient_name or "", line.patient_id or ""]
        table.add_row(*cells)
    Console().print(table)


def _modalities_by_study(session: Session) -> dict[int, str]:
    found: dict[int, set[str]] = {}
    for study_id, modality in session.execute(select(Series.study_id, Series.modality)):
        if modality:
            found.setdefault(study_id, set()).add(modality)
    return {key: "\\".join(sorted(values)) for key, values in found.items()}


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts, disk use, last instance received, the job queue and each destination's backlog."""
    node = state(ctx).reader()
    now = overview.queue_state(node.sessions, node.store, node.settings)
    with node.sessions() as session:
        held = overview.holdings(session)
        last_job = overview.last_finished_job(session)
        commitments = overview.commitment_counts(session)
        deletions = overview.deletion_counts(session)
    test = now.selftest
    selftest = {
        "schedule": node.settings.selftest_time or None,
        "last": None
        if test is None
        else {
            "id": test.id,
            "passed": test.passed,
            "finished_at": test.finished_at.isoformat(),
            "summary": test.summary,
        },
    }
    space = now.space
    report: dict[str, Any] = {
        "studies": held.studies,
        "series": held.series,
        "instances": held.instances,
        "quarantined": now.quarantined,
        "disk_bytes": node.store.disk_usage(),
        # Below the watermark the node refuses new associations and STOW-RS (disk_min_free_*).
        "disk_free": {
            "free_bytes": space.free,
            "total_bytes": space.total,
            "watermark_bytes": space.required,
            "accepting": space.ok,
        },
        "last_received_at": held.last_received_at.isoformat() if held.last_received_at else None,
        "data_dir": str(node.store.root),
        "jobs": now.jobs,
        "last_job": None
        if last_job is None
        else {
            "id": last_job.id,
            "state": last_job.state,
            "finished_at": last_job.finished_at.isoformat() if last_job.finished_at else None,
        },
        "destinations": [
            {
                "name": line.destination,
                "pending": line.pending,
                "failed": line.failed,
                "sent": line.sent,
                "oldest_pending": line.oldest_pending.isoformat() if line.oldest_pending else None,
            }
            for line in now.backlog
        ],
        # Storage commitment reports owed to the modalities that asked (sent, or given up).
        "commitment_reports": commitments,
        # The retention policy (0 days = kept for ever) and the studies it has deleted from.
        "retention": {
            "retention_days": node.settings.retention_days,
            "retention_results_days": node.settings.retention_results_days,
            "studies_deleted": deletions,
        },
        # The latest self-test (`echo-node selftest`, daily at selftest_time).
        "selftest": selftest,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("", "", show_header=False)
    for key, value in report.items():
        if key == "disk_bytes":
            shown = _human_size(value)
        elif key in ("jobs", "commitment_reports"):
            shown = ", ".join(f"{count} {name}" for name, count in value.items())
        elif key == "disk_free":
            shown = (
                f"{_human_size(value['free_bytes'])} free of {_human_size(value['total_bytes'])}"
                f" (watermark {_human_size(value['watermark_bytes'])}): "
            ) + ("accepting new data" if value["accepting"] else "REFUSING new data")
        elif key == "retention":
            days, results = value["retention_days"], value["retention_results_days"]
            shown = (
                "off: nothing is deleted"
                if not days
                else f"received kept {days} d after delivery, results "
                + (f"{results} d" if results else "for ever")
                + f"; deleted so far: {value['studies_deleted']['received']} studies' images, "
                f"{value['studies_deleted']['results']} studies' results"
            )
        elif key == "selftest":
            last = value["last"]
            shown = (
                "none run"
                if last is None
                else ("passed " if last["passed"] else "FAILED ")
                + f"{last['finished_at']}: {last['summary']}"
            ) + (f" (daily at {value['schedule']})" if value["schedule"] else " (no schedule)")
        elif key == "last_job":
            shown = f"#{value['id']} {value['state']} {value['finished_at']}" if value else "-"
        elif key == "destinations":
            shown = (
                "\n".join(
                    f"{d['name']}: {d['pending']} pending, {d['failed']} failed, {d['sent']} sent"
                    for d in value
                )
                or "none configured"
            )
        else:
            shown = str(value or "-")
        table.add_row(key.replace("_", " "), shown)
    Console().print(table)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
