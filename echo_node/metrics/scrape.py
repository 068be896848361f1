"""What one scrape of /metrics returns: the instruments plus gauges read at scrape time.

The gauges that describe state rather than events (jobs by state, delivery backlog, quarantine,
free disk) are read when Prometheus asks, from the database and the data directory, so they
cover every process and host sharing them, with no bookkeeping to drift.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from echo_node.export.backlog import destination_backlog
from echo_node.jobs.queue import STATES
from echo_node.metrics import MULTIPROCESS_ENV
from echo_node.node import Node
from echo_node.selftest.record import failed_values
from echo_node.selftest.record import latest as latest_selftest
from echo_node.watermark import disk_space
from storage.models import Job


class NodeStateCollector(Collector):
    """Gauges computed per scrape: two grouped counts on indexed columns and a directory stat."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        jobs = GaugeMetricFamily(
            "echo_node_jobs", "Jobs in the queue by state (from the database).", labels=["state"]
        )
        pending = GaugeMetricFamily(
            "echo_node_delivery_backlog",
            "Results waiting to be delivered, by destination.",
            labels=["destination"],
        )
        failed = GaugeMetricFamily(
            "echo_node_deliveries_failed",
            "Results whose delivery gave up (`echo-node send` tries again), by destination.",
            labels=["destination"],
        )
        oldest = GaugeMetricFamily(
            "echo_node_delivery_oldest_pending_seconds",
            "Age of the oldest result still waiting for a destination.",
            labels=["destination"],
        )
        now = datetime.now(UTC)
        with node.sessions() as session:
            counts = dict(
                session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            )
            test = latest_selftest(session)
            selftest = (
                None
                if test is None or test.finished_at is None
                else (bool(test.passed), test.finished_at, len(failed_values(test)))
            )
            backlog = destination_backlog(
                session, [destination.name for destination in node.settings.destinations]
            )
        for state in STATES:
            jobs.add_metric([state], float(counts.get(state, 0)))
        for line in backlog:
            pending.add_metric([line.destination], float(line.pending))
            failed.add_metric([line.destination], float(line.failed))
            age = (now - line.oldest_pending).total_seconds() if line.oldest_pending else 0.0
            oldest.add_metric([line.destination], max(age, 0.0))
        yield from (jobs, pending, failed, oldest)
        if selftest is not None:  # none before the first self-test (absent() alerts on it)
            passed, finished, differences = selftest
            yield GaugeMetricFamily(
                "echo_node_selftest_passed",
                "1 if the latest self-test (`echo-node selftest`, selftest_time) passed, else 0.",
                value=1.0 if passed else 0.0,
            )
            yield GaugeMetricFamily(
                "echo_node_selftest_last_run_timestamp_seconds",
                "When the latest self-test ended (Unix time).",
                value=finished.timestamp(),
            )
            yield GaugeMetricFamily(
                "echo_node_selftest_failed_values",
                "Reported values of the latest self-test outside their tolerance (or missing).",
                value=float(differences),
            )

        quarantined = sum(1 for _ in node.store.quarantine_dir.glob("*.json"))
        yield GaugeMetricFamily(
            "echo_node_quarantined_files",
            "Refused instances kept in quarantine/ (each with a JSON sidecar).",
            value=float(quarantined),
        )
        space = disk_space(node.store.root, node.settings)
        yield GaugeMetricFamily(
            "echo_node_data_disk_free_bytes",
            "Free space on the data directory's filesystem.",
            value=float(space.free),
        )
        yield GaugeMetricFamily(
            "echo_node_data_disk_watermark_bytes",
            "Free space below which the node refuses new data (disk_min_free_percent/_gb).",
            value=float(space.required),
        )
        yield GaugeMetricFamily(
            "echo_node_refusing_new_data",
            "1 while free space is below the watermark and new associations and STOW-RS "
            "requests are refused, else 0.",
            value=0.0 if space.ok else 1.0,
        )


def exposition(node: Node) -> bytes:
    """The text format of every metric of this node (all its ingest processes included)."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        # Every process's instruments, this one's too, are in their files there.
        instruments = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(instruments, path=directory)  # type: ignore[no-untyped-call]
    else:
        instruments = node.metrics.registry
    state = CollectorRegistry(auto_describe=True)
    state.register(NodeStateCollector(node))
    # Two registries, no metric name in both: their texts simply follow each other.
    return generate_latest(instruments) + generate_latest(state)
