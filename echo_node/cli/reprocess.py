"""`echo-node reprocess`: put studies back through processing, e.g. with a newer model.

The new run writes new SR/SC instances; the new SR names the earlier one as its predecessor
and the earlier results stay on record. With `--from NAME` each study is first retrieved from
that configured source (echo_node.retrieve), for a study the node no longer holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from echo_node.cli.context import state
from echo_node.jobs import queue
from storage.models import Job, Study
from storage.queue import utc_now
from storage.uids import InvalidUID, checked_uid


def known_pipelines() -> tuple[str, ...]:
    """Every registered pipeline's name, as a reprocess filter names it."""
    from ai.findings import View
    from ai.pipelines import pipeline_name, pipelines_for

    names = {pipeline_name(f) for view in View for f in pipelines_for(view.value)}
    return tuple(sorted(names))


def reprocess(
    ctx: typer.Context,
    study_uids: Annotated[list[str] | None, typer.Argument(help="Study Instance UIDs.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Every study received since this date/time (UTC).")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every study whose last job failed.")
    ] = False,
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="Run only this pipeline or family (e.g. plax, doppler, measurements_2d); "
            "the other pipelines' latest results are carried over."
        ),
    ] = None,
    urgent: Annotated[
        bool,
        typer.Option(
            "--urgent",
            help="Queue beside newly arrived studies; by default reprocessing waits for them.",
        ),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Retrieve the studies from this source (settings: sources) first: C-GET, "
            "C-MOVE or WADO-RS, every instance through the normal ingest path.",
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="With --from: process a study even when only part of it arrived.",
        ),
    ] = False,
) -> None:
    """Queue studies for processing again (after studies that arrive meanwhile)."""
    if pipeline is not None:
        from echo_node.processing.analysis import wanted

        known = known_pipelines()
        if not any(wanted(name, [pipeline]) for name in known):
            raise typer.BadParameter(f"no pipeline {pipeline!r}; known: {', '.join(known)}")
    if source is not None or allow_partial:
        _retrieve(ctx, study_uids or [], since, failed, source, allow_partial, pipeline, urgent)
        return
    if not study_uids and since is None and not failed:
        raise typer.BadParameter("name studies, or use --since or --failed")
    node = state(ctx).node()
    with node.sessions.begin() as session:
        study_ids = _select(session, study_uids or [], since, failed)
        priority = queue.LIVE_PRIORITY if urgent else queue.REPROCESS_PRIORITY
        job_ids = queue.enqueue_reprocess(session, study_ids, utc_now(), pipeline, priority)
    typer.echo(f"queued {len(job_ids)} job(s): {', '.join(map(str, job_ids)) or '-'}")


def _retrieve(
    ctx: typer.Context,
    study_uids: list[str],
    since: datetime | None,
    failed: bool,
    name: str | None,
    allow_partial: bool,
    pipeline: str | None,
    urgent: bool,
) -> None:
    """Each study from the source, then queued; exit 1 when any was not found, could not be
    retrieved, or (without --allow-partial) arrived only in part."""
    from echo_node.retrieve.outcome import RetrieveError
    from echo_node.retrieve.run import retrieve_study

    if name is None:
        raise typer.BadParameter("--allow-partial goes with --from NAME")
    if not study_uids or since is not None or failed:
        raise typer.BadParameter("--from takes Study Instance UIDs, not --since or --failed")
    settings = state(ctx).settings()
    source = settings.source(name)
    if source is None:
        known = ", ".join(s.name for s in settings.sources) or "none configured"
        typer.echo(f"error: no source {name!r} (sources: {known})", err=True)
        raise typer.Exit(2)
    for uid in study_uids:
        try:  # before any network: a bad UID is a usage error
            checked_uid(uid, "STUDY_UID")
        except InvalidUID as exc:
            raise typer.BadParameter(str(exc)) from None
    node = state(ctx).node()
    priority = queue.LIVE_PRIORITY if urgent else queue.REPROCESS_PRIORITY
    problems = 0
    for uid in study_uids:
        try:
            result = retrieve_study(
                node,
                source,
                uid,
                pipelines=pipeline,
                priority=priority,
                allow_partial=allow_partial,
            )
        except RetrieveError as exc:
            typer.echo(f"error: {exc}", err=True)
            problems += 1
            continue
        retrieval = result.retrieval
        if result.queued:
            typer.echo(f"{retrieval.describe()}; queued job {result.job_id}")
        elif result.job_id is None:
            typer.echo(f"error: nothing retrieved: {retrieval.describe()}", err=True)
            problems += 1
        else:
            typer.echo(
                f"error: partial retrieval: {retrieval.describe()}; the instances that arrived "
                f"are kept, the study is not processed (job {result.job_id} skipped): run again "
                "for the rest, or add --allow-partial",
                err=True,
            )
            problems += 1
    node.engine.dispose()
    if problems:
        raise typer.Exit(1)


def _select(
    session: Session, study_uids: list[str], since: datetime | None, failed: bool
) -> list[int]:
    ids: list[int] = []
    if study_uids:
        found = dict(
            session.execute(
                select(Study.study_instance_uid, Study.id).where(
                    Study.study_instance_uid.in_(study_uids)
                )
            ).all()
        )
        missing = [uid for uid in study_uids if uid not in found]
        if missing:
            typer.echo(f"unknown study: {', '.join(missing)}", err=True)
            raise typer.Exit(1)
        ids += [found[uid] for uid in study_uids]
    if since is not None:
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        ids += session.scalars(select(Study.id).where(Study.last_received_at >= moment)).all()
    if failed:
        latest = select(Job.study_id, func.max(Job.id).label("job_id")).group_by(Job.study_id)
        latest_jobs = latest.subquery()
        ids += session.scalars(
            select(Job.study_id)
            .join(latest_jobs, latest_jobs.c.job_id == Job.id)
            .where(Job.state == queue.FAILED)
        ).all()
    return list(dict.fromkeys(ids))
