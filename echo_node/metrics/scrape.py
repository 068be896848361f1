"""What one scrape of /metrics returns: the instruments plus gauges read at scrape time.

The gauges that describe state rather than events (jobs by state, delivery backlog, quarantine,
free disk) are read when Prometheus asks, from the database and the data directory, so they
cover every process and host sharing them, with no bookkeeping to drift. The reading is the
caller's (echo_node.overview.queue_state, the queries `echo-node status` prints too): this
module only turns it into metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from echo_node.metrics import MULTIPROCESS_ENV
from echo_node.overview import QueueState


class NodeStateCollector(Collector):
    """Gauges computed per scrape from what ``read`` returns at that moment."""

    def __init__(self, read: Callable[[], QueueState]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        state = self.read()
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
        for name, count in state.jobs.items():
            jobs.add_metric([name], float(count))
        for line in state.backlog:
            pending.add_metric([line.destination], float(line.pending))
            failed.add_metric([line.destination], float(line.failed))
            age = (
                (state.read_at - line.oldest_pending).total_seconds()
                if line.oldest_pending
                else 0.0
            )
            oldest.add_metric([line.destination], max(age, 0.0))
        yield from (jobs, pending, failed, oldest)
        selftest = state.selftest
        if selftest is not None:  # none before the first self-test (absent() alerts on it)
            yield GaugeMetricFamily(
                "echo_node_selftest_passed",
                "1 if the latest self-test (`echo-node selftest`, selftest_time) passed, else 0.",
                value=1.0 if selftest.passed else 0.0,
            )
            yield GaugeMetricFamily(
                "echo_node_selftest_last_run_timestamp_seconds",
                "When the latest self-test ended (Unix time).",
                value=selftest.finished_at.timestamp(),
            )
            yield GaugeMetricFamily(
                "echo_node_selftest_failed_values",
                "Reported values of the latest self-test outside their tolerance (or missing).",
                value=float(selftest.failed_values),
            )

        yield GaugeMetricFamily(
            "echo_node_quarantined_files",
            "Refused instances kept in quarantine/ (each with a JSON sidecar).",
            value=float(state.quarantined),
        )
        space = state.space
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


def exposition(own: CollectorRegistry, read: Callable[[], QueueState]) -> bytes:
    """The text format of every metric of this node (all its ingest processes included):
    the instruments (this process's ``own`` registry, or every process's files in multiprocess
    mode) and the gauges of what ``read`` returns."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        # Every process's instruments, this one's too, are in their files there.
        instruments = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(instruments, path=directory)  # type: ignore[no-untyped-call]
    else:
        instruments = own
    state = CollectorRegistry(auto_describe=True)
    state.register(NodeStateCollector(read))
    # Two registries, no metric name in both: their texts simply follow each other.
    return generate_latest(instruments) + generate_latest(state)
