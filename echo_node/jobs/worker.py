"""The worker: claims jobs, runs them with a renewed lease, records what happened.

Each worker thread loops: claim a due job (or take over one whose lease ran out), run
``echo_node.processing.run_job`` while a heartbeat renews the lease, record the outcome.
Delivering the results is a periodic pass of its own (echo_node.periodic). A process that dies
simply stops renewing; its jobs come back when their leases expire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable

from ai.model_source import ModelSource
from echo_node.jobs import queue
from echo_node.jobs.outcome import JobOutcome, TransientJobError
from echo_node.node import Node
from storage.queue import utc_now

logger = logging.getLogger(__name__)

RunJob = Callable[[Node, int, ModelSource | None], JobOutcome]
# How long an idle worker waits before looking for work again.
_IDLE_POLL_S = 1.0


def worker_id(thread_index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{thread_index}"


class Worker:
    """Worker threads of one process; ``stop`` lets each finish its current job and end."""

    def __init__(self, node: Node, run_job: RunJob, models: ModelSource | None) -> None:
        self.node = node
        self.run_job = run_job
        self.models = models
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.node.settings.worker_threads):
            thread = threading.Thread(
                target=self._loop, args=(worker_id(index),), name=f"worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, me: str) -> None:
        while not self.stop.is_set():
            try:
                worked = self.run_one(me)
            except Exception:  # the loop must outlive any one fault; the log keeps it
                logger.exception("worker loop error", extra={"worker": me})
                worked = False
            if not worked:
                self.stop.wait(_IDLE_POLL_S)

    def run_one(self, me: str) -> bool:
        """Claim and run one job; False when none was due."""
        settings = self.node.settings
        with self.node.sessions.begin() as session:
            job = queue.claim_job(session, me, settings, utc_now())
            job_id = job.id if job is not None else None
        if job_id is None:
            return False
        logger.info("job started", extra={"job_id": job_id, "worker": me})
        heartbeat_stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job_id, me, heartbeat_stop), daemon=True
        )
        heartbeat.start()
        metrics, started = self.node.metrics, time.perf_counter()
        try:
            outcome = self.run_job(self.node, job_id, self.models)
        except TransientJobError as error:
            metrics.job_finished("transient_error", time.perf_counter() - started, [])
            self._fail(job_id, me, f"{error}", transient=True)
        except Exception as error:
            metrics.job_finished("failed", time.perf_counter() - started, [])
            logger.error("job failed", extra={"job_id": job_id, "error": type(error).__name__})
            logger.debug("job failure detail: %s", traceback.format_exc())
            self._fail(job_id, me, f"{type(error).__name__}: {error}", transient=False)
        else:
            metrics.job_finished(outcome.state, time.perf_counter() - started, outcome.steps)
            with self.node.sessions.begin() as session:
                queue.record_outcome(session, job_id, me, outcome)
            logger.info(
                "job finished", extra={"job_id": job_id, "state": outcome.state, "worker": me}
            )
        finally:
            heartbeat_stop.set()
            heartbeat.join()
        return True

    def _fail(self, job_id: int, me: str, error: str, transient: bool) -> None:
        with self.node.sessions.begin() as session:
            queue.record_failure(session, job_id, me, error, transient, self.node.settings)

    def _heartbeat(self, job_id: int, me: str, done: threading.Event) -> None:
        interval = self.node.settings.job_lease_s / 3
        while not done.wait(interval):
            with self.node.sessions.begin() as session:
                if not queue.renew_lease(session, job_id, me, self.node.settings):
                    logger.warning("lost the lease on a running job", extra={"job_id": job_id})
                    return
