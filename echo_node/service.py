"""Running the node: the services `echo-node serve` starts, in one or several processes.

The first process owns start-up (migrations, clearing tmp/) and the services that must run
once; it opens the DIMSE listening sockets, and extra ingest processes only accept DIMSE
associations on them (echo_node.dimse.listeners).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import ssl
import threading
from pathlib import Path
from types import FrameType

from echo_node.dimse.commitment_report import Reporter
from echo_node.dimse.listeners import Listeners
from echo_node.dimse.server import DimseServer, dimse_ports
from echo_node.dimse.tls import server_context
from echo_node.jobs.worker import Worker
from echo_node.logsetup import configure_logging
from echo_node.metrics.multiprocess import enter_multiprocess_mode, leave_multiprocess_mode
from echo_node.node import Node, open_node
from echo_node.periodic import (
    Scheduler,
    schedule_commitment_reports,
    schedule_processing,
    schedule_retention,
    schedule_selftest,
)
from echo_node.settings import Settings, load_settings
from echo_node.web.server import run_http

logger = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the main thread's job is then to shut down)."""
    stop = threading.Event()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def wait(stop: threading.Event) -> None:
    # Short waits keep the main thread responsive to signals.
    while not stop.wait(0.5):
        pass


class Processing:
    """The worker threads of one process, and its passes: stable-study sweep, deliveries."""

    def __init__(self, node: Node, scheduler: Scheduler) -> None:
        # Imported here: they pull in torch, which ingest-only processes never need.
        from ai.models.store import ModelStore
        from echo_node.processing import run_job

        threads = node.settings.torch_threads or None
        models = ModelStore(
            node.settings.resolved_models_dir,
            device=node.settings.inference_device,
            backend=node.settings.inference_backend,
            threads=threads,
        )
        self.worker = Worker(node, run_job, models)
        self.worker.start()
        schedule_processing(scheduler, node)

    def stop(self) -> None:
        # A job still running when the wait ends keeps its lease until it expires; another
        # worker (or this node after a restart) then takes it over.
        self.worker.join(timeout=_JOB_DRAIN_TIMEOUT_S)


# How long shutdown waits for a running job to finish before leaving it to lease expiry.
_JOB_DRAIN_TIMEOUT_S = 30.0


def run_worker(settings: Settings, stop: threading.Event) -> None:
    """`echo-node worker`: sweeps and processing only, no network services."""
    node = open_node(settings)
    scheduler = Scheduler()
    processing = Processing(node, scheduler)
    try:
        wait(stop)
    finally:
        scheduler.shutdown()
        processing.stop()
        node.engine.dispose()


def serve(settings: Settings, config_file: Path | None, stop: threading.Event) -> None:
    # First: unusable certificate files stop the node (ConfigError) before anything starts.
    tls = server_context(settings) if settings.dimse_enabled else None
    # Before open_node: the metrics of this process and of the ingest processes it starts
    # then all go to one directory, which /metrics adds up.
    metrics_dir = enter_multiprocess_mode() if settings.metrics_enabled else None
    node = open_node(settings)
    stale = node.store.remove_stale_temp_files()
    if stale:
        logger.warning(
            "removed unacknowledged partial files left by a crash", extra={"count": stale}
        )
    if not settings.allowed_peers:
        logger.warning("allowed_peers is empty: every calling AE and address is accepted")

    # Opened here, before the other ingest processes start: they all accept on these sockets.
    processes = settings.resolved_ingest_processes if settings.dimse_enabled else 1
    ports = dimse_ports(settings) if settings.dimse_enabled else []
    listeners = Listeners.open(settings.bind, ports, processes)
    children = _start_ingest_children(processes - 1, config_file, listeners)
    scheduler = Scheduler()
    dimse = dimse_server(node, tls, listeners.for_process(0)) if settings.dimse_enabled else None
    if dimse is not None:
        dimse.start()
        schedule_commitment_reports(scheduler, settings, dimse.reporter.report_due)
    http_stop = threading.Event()
    http = threading.Thread(target=run_http, args=(node, http_stop), name="http", daemon=True)
    if settings.http_enabled:
        http.start()
    processing = Processing(node, scheduler) if settings.process_enabled else None
    if settings.retention_days:
        schedule_retention(scheduler, node)
    if dimse is not None:  # the self-test's clips come in through this process's listener
        schedule_selftest(scheduler, node)
    try:
        wait(stop)
    finally:
        scheduler.shutdown()  # lets a running pass end; starts no other
        if processing is not None:
            processing.stop()
        for child in children:
            child.terminate()  # SIGTERM: each child drains its own C-STOREs
        http_stop.set()
        if dimse is not None:
            dimse.stop()
        if http.is_alive():
            http.join(timeout=60)
        for child in children:
            child.join(timeout=90)
        node.engine.dispose()
        leave_multiprocess_mode(metrics_dir)


def dimse_server(
    node: Node, tls: ssl.SSLContext | None, listeners: Listeners | None = None
) -> DimseServer:
    """The DIMSE services over the node's durable parts: C-STORE into its ingestor, storage
    commitment reports sent by a Reporter over its database and file store; ``listeners``, the
    sockets this process accepts on (shared with the other ingest processes)."""
    reporter = Reporter(node.settings, node.sessions, node.store)
    return DimseServer(node.settings, node.ingestor, reporter, tls, listeners)


def _start_ingest_children(
    count: int, config_file: Path | None, listeners: Listeners
) -> list[multiprocessing.process.BaseProcess]:
    # spawn, not fork: the parent already runs threads and holds database connections.
    context = multiprocessing.get_context("spawn")
    children: list[multiprocessing.process.BaseProcess] = []
    for index in range(1, count + 1):
        child = context.Process(
            target=_ingest_child,
            args=(config_file, listeners.for_process(index)),
            name=f"echo-node-ingest-{index}",
        )
        child.start()
        children.append(child)
    return children


def _ingest_child(config_file: Path | None, listeners: Listeners) -> None:
    stop = stop_on_signals()
    settings = load_settings(config_file)
    configure_logging(settings.log_level, settings.log_format)
    node = open_node(settings)
    # Each process builds its own context (an SSLContext does not cross processes); the parent
    # has already checked the files.
    dimse = dimse_server(node, server_context(settings), listeners)
    dimse.start()
    try:
        wait(stop)
    finally:
        dimse.stop()
        node.engine.dispose()
