"""The database: reachable and at the code's schema, jobs whose worker vanished, failed sends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from echo_node.doctor.report import Check
from echo_node.jobs.queue import RUNNING
from echo_node.settings import Settings
from storage.db import schema_state
from storage.models import Delivery, Job, Output, Study
from storage.queue import FAILED, PENDING


def check_schema(engine: Engine, verify: bool) -> Check:
    """FAIL unless the database answers and is at the newest revision; migrates nothing."""
    try:
        schema = schema_state(engine)
        integrity = _sqlite_integrity(engine) if verify else None
    except SQLAlchemyError as exc:
        reason = str(exc.args[0] if exc.args else exc)[:300]
        return Check("database", "FAIL", f"cannot read it: {type(exc).__name__}: {reason}")
    if schema.problem is not None:
        return Check("database", "FAIL", schema.problem)
    heads = ", ".join(sorted(schema.heads))
    if integrity is not None and integrity != "ok":
        return Check("database", "FAIL", f"SQLite quick_check: {integrity[:200]}")
    checked = ", quick_check ok" if integrity == "ok" else ""
    return Check("database", "OK", f"{engine.dialect.name}, schema at head {heads}{checked}")


def _sqlite_integrity(engine: Engine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        rows = connection.execute(text("PRAGMA quick_check")).scalars().all()
    return "; ".join(str(row) for row in rows)


def check_jobs(sessions: sessionmaker[Session]) -> Check:
    """Running jobs whose lease ran out: no worker renews them, none has taken them over yet."""
    now = datetime.now(UTC)
    with sessions() as session:
        stuck = session.execute(
            select(Job.id, Study.study_instance_uid, Job.lease_until)
            .join(Study, Job.study_id == Study.id)
            .where(Job.state == RUNNING, or_(Job.lease_until.is_(None), Job.lease_until < now))
            .order_by(Job.id)
        ).all()
    if not stuck:
        return Check("jobs", "OK", "no running job with an expired lease")
    items = tuple(
        f"job {job_id} (study {study_uid}), lease expired "
        + (f"{(now - lease).total_seconds() / 60:.0f} min ago" if lease else "never set")
        for job_id, study_uid, lease in stuck
    )
    return Check(
        "jobs",
        "WARN",
        f"{len(stuck)} job(s) running with an expired lease: no worker is taking them over "
        "(is a worker or `serve` with process_enabled running?)",
        items,
    )


def check_deliveries(sessions: sessionmaker[Session], settings: Settings) -> Check:
    """Results that will not reach a destination by themselves: failed, or out of attempts."""
    with sessions() as session:
        rows = session.execute(
            select(Delivery.destination, Output.sop_instance_uid, Study.study_instance_uid)
            .join(Output, Delivery.output_id == Output.id)
            .join(Study, Output.study_id == Study.id)
            .where(
                or_(
                    Delivery.state == FAILED,
                    (Delivery.state == PENDING)
                    & (Delivery.attempts >= settings.delivery_max_attempts),
                )
            )
            .order_by(Delivery.id)
        ).all()
    if not rows:
        return Check("deliveries", "OK", "no result undelivered after its last attempt")
    items = tuple(f"{dest}: {sop} (study {study})" for dest, sop, study in rows)
    destinations = sorted({dest for dest, _, _ in rows})
    return Check(
        "deliveries",
        "FAIL",
        f"{len(rows)} result(s) not delivered to {', '.join(destinations)} after "
        "delivery_max_attempts or a refusal (`echo-node send STUDY_UID` sends again)",
        items,
    )
