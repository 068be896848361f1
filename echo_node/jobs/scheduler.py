"""The node's periodic sweeps on APScheduler, each in its own background scheduler.

- stable studies: every ``sweep_interval_s`` seconds, queue a job for each study that has been
  quiet for ``stable_after_s`` (echo_node.jobs.queue does the work);
- storage commitment reports due for a (re)try, every ``sweep_interval_s``;
- the retention policy, every ``retention_sweep_interval_s``, the first at once;
- the self-test (echo_node.selftest), daily at ``selftest_time`` (the host's local time).

Running any of them in several processes is safe: a job's unique content key lets only one
insert win, a report is claimed under a lease, a study is assessed again in the transaction
that deletes it. A sweep that overruns is not started twice (max_instances=1, coalesce).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from echo_node.jobs import queue
from echo_node.node import Node

logger = logging.getLogger(__name__)


def sweep(node: Node) -> list[int]:
    with node.sessions.begin() as session:
        return queue.enqueue_stable_studies(session, node.settings, queue.now_utc())


def _every(
    seconds: float, job_id: str, work: Callable[[], Any], first: datetime | None = None
) -> BackgroundScheduler:
    # APScheduler logs every run at INFO; each sweep logs what it does itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone="UTC")
    timing: dict[str, Any] = {"next_run_time": first} if first is not None else {}
    scheduler.add_job(
        work,
        "interval",
        seconds=seconds,
        id=job_id,
        max_instances=1,
        coalesce=True,
        **timing,
    )
    scheduler.start()
    return scheduler


def start_scheduler(node: Node) -> BackgroundScheduler:
    """The stable-study sweep."""
    return _every(node.settings.sweep_interval_s, "stable-study-sweep", lambda: sweep(node))


def start_commitment_sweep(node: Node) -> BackgroundScheduler:
    """Storage commitment reports due for a (re)try. Runs wherever the DIMSE service does,
    processing or not: a report taken on must go out."""
    return _every(
        node.settings.sweep_interval_s, "commitment-report-sweep", node.reporter.report_due
    )


def start_retention_sweep(node: Node) -> BackgroundScheduler:
    """The retention policy (echo_node.retention); the first sweep runs at start."""
    from echo_node.retention.sweep import sweep as retention_sweep

    def work() -> None:
        retention_sweep(
            node.sessions,
            node.store,
            node.settings,
            queue.now_utc(),
            node.metrics.retention_deleted,
        )

    return _every(
        node.settings.retention_sweep_interval_s, "retention-sweep", work, queue.now_utc()
    )


def start_selftest_schedule(node: Node) -> BackgroundScheduler | None:
    """The daily self-test at ``selftest_time``; None when it is "" (off)."""
    from echo_node.selftest.run import run_selftest
    from echo_node.settings import selftest_clock

    clock = selftest_clock(node.settings.selftest_time)
    if clock is None:
        return None
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler()  # the host's time zone: "HH:MM" as the operator means it
    scheduler.add_job(
        lambda: run_selftest(node, "schedule"),
        "cron",
        hour=clock[0],
        minute=clock[1],
        id="daily-selftest",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
