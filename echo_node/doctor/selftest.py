"""The self-test's latest outcome (echo_node.selftest): a failed one is a FAIL, a daily one
that stopped running a WARN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from echo_node.doctor.report import Check
from echo_node.selftest.record import failed_values, latest
from echo_node.settings import Settings

# A daily self-test older than this has missed its last run.
_DAILY_GRACE = timedelta(hours=26)


def check_selftest(sessions: sessionmaker[Session], settings: Settings) -> Check:
    schedule = settings.selftest_time
    with sessions() as session:
        test = latest(session)
        if test is None or test.finished_at is None:
            if schedule:
                return Check("self-test", "WARN", f"none has run yet (daily at {schedule})")
            return Check(
                "self-test",
                "OK",
                "none run (`echo-node selftest`; selftest_time runs it daily)",
            )
        when = test.finished_at.strftime("%Y-%m-%d %H:%M UTC")
        summary, differences = test.summary or "", failed_values(test)
        passed = bool(test.passed)
        notes = [str(note) for note in (test.detail or {}).get("notes", [])][:1]
        finished = test.finished_at
    if not passed:
        return Check(
            "self-test",
            "FAIL",
            f"the self-test of {when} failed" + ("" if differences else f": {summary}"),
            tuple(differences),
        )
    if schedule and datetime.now(UTC) - finished > _DAILY_GRACE:
        return Check(
            "self-test", "WARN", f"passed {when}, but the daily run at {schedule} has not run since"
        )
    return Check(
        "self-test", "OK", f"passed {when}: {summary.removeprefix('PASS: ')}", tuple(notes)
    )
