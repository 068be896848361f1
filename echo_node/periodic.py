"""The node's periodic work, on one APScheduler per process.

- the stable-study sweep, a job for each study quiet for ``stable_after_s``: every
  ``sweep_interval_s``, in the processes that process (`serve` with process_enabled, `worker`);
- deliveries of results to their destinations: every second, and again at once while there
  was work, in the same processes;
- storage commitment reports due for a (re)try: every ``sweep_interval_s``, wherever the DIMSE
  service runs, processing or not (a report taken on must go out);
- the retention policy (echo_node.retention): every ``retention_sweep_interval_s``, the first
  at start, in `serve`'s first process when retention_days > 0;
- the self-test (echo_node.selftest): daily at ``selftest_time`` (the host's local time), in
  `serve`'s first process when it runs the DIMSE service (the test's clips come in through it).

Running any of them in several processes is safe: a job's unique content key lets only one
insert win, deliveries and reports are claimed under a lease (storage.queue), a study is
assessed again in the transaction that deletes it. A pass that overruns is not started twice
at once (max_instances, coalesce); the delivery pass may run in up to ``worker_threads``
threads, as many as the worker's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from tzlocal import get_localzone

from echo_node.export.deliver import deliver_due
from echo_node.jobs import queue
from echo_node.node import Node
from echo_node.retention.sweep import sweep as retention_sweep
from echo_node.settings import Settings, selftest_clock
from storage.queue import utc_now

logger = logging.getLogger(__name__)

# How soon a result queued for delivery is looked at (what an idle worker waited between looks
# before delivery had a pass of its own).
DELIVERY_POLL_S = 1.0


class Scheduler:
    """One process's periodic passes; ``shutdown`` lets the running ones finish."""

    def __init__(self) -> None:
        # APScheduler logs every run at INFO and a pass still running at its next time at
        # WARNING (the delivery pass often is: it drains a backlog); each pass logs what it
        # does itself, and a pass that raises is still logged (ERROR).
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self.stopping = threading.Event()
        self._scheduler.start()

    def every(
        self,
        seconds: float,
        name: str,
        work: Callable[[], Any],
        *,
        first: datetime | None = None,
        instances: int = 1,
    ) -> None:
        """Run ``work`` every ``seconds`` (the first time at ``first``, else after one
        interval), in at most ``instances`` threads at once."""
        timing: dict[str, Any] = {"next_run_time": first} if first is not None else {}
        self._scheduler.add_job(
            work,
            "interval",
            seconds=seconds,
            id=name,
            max_instances=instances,
            coalesce=True,
            **timing,
        )

    def daily(self, hour: int, minute: int, name: str, work: Callable[[], Any]) -> None:
        """Run ``work`` every day at ``hour``:``minute`` of the host's time zone (the time an
        operator means when they write one)."""
        self._scheduler.add_job(
            work,
            CronTrigger(hour=hour, minute=minute, timezone=get_localzone()),
            id=name,
            max_instances=1,
            coalesce=True,
        )

    def job(self, name: str) -> Job | None:
        """The scheduled pass called ``name`` (its trigger says when it runs next)."""
        return self._scheduler.get_job(name)

    def until_idle(self, work: Callable[[], int]) -> Callable[[], None]:
        """``work`` run again at once while it did something (a backlog is drained, not
        taken one batch a tick), until it finds nothing or the scheduler stops."""

        def drain() -> None:
            while work() and not self.stopping.is_set():
                pass

        return drain

    def shutdown(self) -> None:
        self.stopping.set()
        self._scheduler.shutdown(wait=True)


def sweep(node: Node) -> list[int]:
    """One stable-study sweep (echo_node.jobs.queue does the work)."""
    with node.sessions.begin() as session:
        return queue.enqueue_stable_studies(session, node.settings, utc_now())


def schedule_processing(scheduler: Scheduler, node: Node) -> None:
    """The passes of a process that processes: the stable-study sweep and deliveries."""
    settings = node.settings
    scheduler.every(settings.sweep_interval_s, "stable-study-sweep", lambda: sweep(node))
    me = f"{socket.gethostname()}:{os.getpid()}:deliveries"
    scheduler.every(
        DELIVERY_POLL_S,
        "deliveries",
        scheduler.until_idle(lambda: deliver_due(node, me)),
        instances=settings.worker_threads,
    )


def schedule_commitment_reports(
    scheduler: Scheduler, settings: Settings, report_due: Callable[[], object]
) -> None:
    """Storage commitment reports due for a (re)try (echo_node.dimse.commitment_report)."""
    scheduler.every(settings.sweep_interval_s, "commitment-report-sweep", report_due)


def schedule_retention(scheduler: Scheduler, node: Node) -> None:
    """The retention policy (echo_node.retention); the first sweep runs at start."""

    def work() -> None:
        retention_sweep(
            node.sessions, node.store, node.settings, utc_now(), node.metrics.retention_deleted
        )

    scheduler.every(
        node.settings.retention_sweep_interval_s, "retention-sweep", work, first=utc_now()
    )


def schedule_selftest(scheduler: Scheduler, node: Node) -> None:
    """The daily self-test at ``selftest_time`` (none when it is ""). It runs in a thread of its
    own so that stopping the node does not wait for it: an interrupted self-test's phantom
    study is removed by the next one (echo_node.selftest.run)."""
    clock = selftest_clock(node.settings.selftest_time)
    if clock is None:
        return

    def start() -> None:
        # Imported when the test runs: it pulls in the SR writers (highdicom), which `serve`
        # need not load before it answers.
        from echo_node.selftest.run import run_selftest

        threading.Thread(
            target=run_selftest, args=(node, "schedule"), name="selftest", daemon=True
        ).start()

    scheduler.daily(*clock, "daily-selftest", start)
