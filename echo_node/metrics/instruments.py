"""The instruments: counters and histograms updated where things happen.

Label values come from small fixed sets (transport, outcome, step name, destination name):
never a UID or anything from a dataset, which would leak patient context and make a new
series per study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Where an instance came from (echo_node.ingest.Peer.transport).
TRANSPORTS = ("dimse", "stowrs", "import", "node", "retrieve")
OUTCOMES = ("stored", "duplicate", "quarantined", "failed")
_STEP_NAME = re.compile(r"[a-z0-9_:\-]{1,40}")
# A job runs seconds (classical Doppler) to many minutes (PLAX on CPU, MEASURED.md).
_JOB_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Header check, sha256, fsync and commit of one file: milliseconds to a few seconds.
_INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class Metrics:
    """One process's instruments; in multiprocess mode their values go to per-process files."""

    registry: CollectorRegistry
    instances: Counter
    bytes_received: Counter
    ingest_seconds: Histogram
    associations_active: Gauge
    jobs_finished: Counter
    job_seconds: Histogram
    job_step_seconds: Histogram
    deliveries: Counter
    retention_instances: Counter
    retention_bytes: Counter

    def ingested(self, transport: str, outcome: str, size: int, seconds: float | None) -> None:
        """One received instance's outcome; ``seconds`` from bytes on disk to the answer."""
        self.instances.labels(transport, outcome).inc()
        self.bytes_received.labels(transport).inc(size)
        if seconds is not None:
            self.ingest_seconds.labels(transport).observe(seconds)

    def job_finished(
        self, outcome: str, seconds: float, steps: Iterable[Mapping[str, Any]]
    ) -> None:
        self.jobs_finished.labels(outcome).inc()
        self.job_seconds.labels(outcome).observe(seconds)
        for step in steps:
            name, took = step.get("step"), step.get("seconds")
            if isinstance(name, str) and isinstance(took, int | float):
                # Step names are the code's own ("decode", "pipeline:plax"); anything else
                # is folded so the label set stays bounded.
                label = name if _STEP_NAME.fullmatch(name) else "other"
                self.job_step_seconds.labels(label).observe(float(took))

    def delivered(self, destination: str, outcome: str) -> None:
        self.deliveries.labels(destination, outcome).inc()

    def retention_deleted(self, kind: str, instances: int, size: int) -> None:
        """One study's instances deleted by the retention policy ("received" or "results")."""
        self.retention_instances.labels(kind).inc(instances)
        self.retention_bytes.labels(kind).inc(size)


def create_metrics() -> Metrics:
    """Fresh instruments in their own registry (tests open several nodes in one process)."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = Metrics(
        registry=registry,
        instances=Counter(
            "echo_node_instances_received",
            "Instances received, by transport and outcome (stored, duplicate, quarantined, "
            "failed).",
            ["transport", "outcome"],
            registry=registry,
        ),
        bytes_received=Counter(
            "echo_node_received_bytes",
            "Bytes of received instances (whatever their outcome), by transport.",
            ["transport"],
            registry=registry,
        ),
        ingest_seconds=Histogram(
            "echo_node_ingest_seconds",
            "From a received file on disk to its answer: header check, sha256, fsync, commit.",
            ["transport"],
            buckets=_INGEST_BUCKETS,
            registry=registry,
        ),
        associations_active=Gauge(
            "echo_node_dimse_associations_active",
            "DIMSE associations established and not yet ended (all ingest processes).",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        jobs_finished=Counter(
            "echo_node_jobs_finished",
            "Jobs run by this process's workers, by outcome (done, skipped, failed, "
            "transient_error: retried later or failed at the last attempt).",
            ["outcome"],
            registry=registry,
        ),
        job_seconds=Histogram(
            "echo_node_job_seconds",
            "Wall time of one job run by this process's workers, by outcome.",
            ["outcome"],
            buckets=_JOB_BUCKETS,
            registry=registry,
        ),
        job_step_seconds=Histogram(
            "echo_node_job_step_seconds",
            "Time of each step of a job (decode, view, pipeline:NAME, sr, sc).",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        ),
        deliveries=Counter(
            "echo_node_deliveries",
            "Delivery attempts of results, by destination and outcome (sent, retry, failed).",
            ["destination", "outcome"],
            registry=registry,
        ),
        retention_instances=Counter(
            "echo_node_retention_deleted_instances",
            "Instances deleted by the retention policy, by kind (received, results).",
            ["kind"],
            registry=registry,
        ),
        retention_bytes=Counter(
            "echo_node_retention_deleted_bytes",
            "Bytes of files deleted by the retention policy, by kind (received, results).",
            ["kind"],
            registry=registry,
        ),
    )
    # Every known series from the start, at zero: a rate() needs a first sample to begin with.
    for kind in ("received", "results"):
        metrics.retention_instances.labels(kind)
        metrics.retention_bytes.labels(kind)
    for transport in TRANSPORTS:
        metrics.bytes_received.labels(transport)
        for outcome in OUTCOMES:
            metrics.instances.labels(transport, outcome)
    return metrics
