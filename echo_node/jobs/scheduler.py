"""The stable-study sweep on APScheduler: every ``sweep_interval_s`` seconds, queue a job for
each study that has been quiet for ``stable_after_s`` (echo_node.jobs.queue does the work).

Running this in several processes is safe: the job's unique content key lets only one insert
win. A sweep that overruns is not started twice (max_instances=1, coalesce).
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from echo_node.jobs import queue
from echo_node.node import Node

logger = logging.getLogger(__name__)


def sweep(node: Node) -> list[int]:
    with node.sessions.begin() as session:
        return queue.enqueue_stable_studies(session, node.settings, queue.now_utc())


def start_scheduler(node: Node) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        sweep,
        "interval",
        args=[node],
        seconds=node.settings.sweep_interval_s,
        id="stable-study-sweep",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    # APScheduler logs every run at INFO; the sweep logs what it queues itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return scheduler


def start_commitment_sweep(node: Node) -> BackgroundScheduler:
    """Storage commitment reports due for a (re)try, every ``sweep_interval_s`` seconds.

    Runs wherever the DIMSE service does, processing or not: a report taken on must go out.
    Several processes sweeping is safe, each report being claimed under a lease.
    """
    # APScheduler logs every run at INFO; the reporter logs what it sends itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        node.reporter.report_due,
        "interval",
        seconds=node.settings.sweep_interval_s,
        id="commitment-report-sweep",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler


def start_retention_sweep(node: Node) -> BackgroundScheduler:
    """The retention policy (echo_node.retention) every ``retention_sweep_interval_s``.

    Several processes or hosts sweeping is safe: each study is assessed again inside the
    transaction that deletes it.
    """
    from echo_node.retention.sweep import sweep as retention_sweep

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        lambda: retention_sweep(
            node.sessions,
            node.store,
            node.settings,
            queue.now_utc(),
            node.metrics.retention_deleted,
        ),
        "interval",
        seconds=node.settings.retention_sweep_interval_s,
        id="retention-sweep",
        max_instances=1,
        coalesce=True,
        next_run_time=queue.now_utc(),
    )
    scheduler.start()
    return scheduler
