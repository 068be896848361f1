"""Where a running job is, on its row for `echo-node jobs`: clip i of n, the step, an estimate
of the time left.

The estimate is the mean time of the clips finished so far times the clips still to do, less
the time the current clip has taken: rough for an exam whose few PLAX/A4C clips cost most of
its time, and refined with every clip. A progress write that fails (database busy) is skipped:
progress is for watching, never a reason to fail a job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from echo_node.jobs import queue
from echo_node.node import Node
from storage.queue import utc_now

logger = logging.getLogger(__name__)


class Progress:
    """One job's progress reporter (state: the clock and the finished clips' time)."""

    def __init__(self, node: Node, job_id: int, clips: int) -> None:
        self.node = node
        self.job_id = job_id
        self.clips = clips
        self.started = time.monotonic()
        self.clip = 0
        self.clip_started = self.started

    def next_clip(self) -> int:
        self.clip += 1
        self.clip_started = time.monotonic()
        return self.clip

    def step(self, name: str) -> None:
        self.write(self.snapshot(name))

    def snapshot(self, name: str) -> dict[str, Any]:
        now = time.monotonic()
        done = self.clip - 1
        left: float | None = None
        if done > 0:
            per_clip = (self.clip_started - self.started) / done
            left = max(0.0, per_clip * (self.clips - done) - (now - self.clip_started))
        return {
            "clip": self.clip,
            "clips": self.clips,
            "step": name,
            "elapsed_s": round(now - self.started, 1),
            "estimated_left_s": None if left is None else round(left, 1),
            "updated_at": utc_now().isoformat(timespec="seconds"),
        }

    def write(self, progress: dict[str, Any]) -> None:
        try:
            with self.node.sessions.begin() as session:
                queue.record_progress(session, self.job_id, progress)
        except SQLAlchemyError as error:
            logger.debug(
                "job progress not recorded",
                extra={"job_id": self.job_id, "error": type(error).__name__},
            )
