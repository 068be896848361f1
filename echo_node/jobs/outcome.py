"""What running a job returns, and the error that asks for a retry.

The worker (echo_node.jobs.worker) calls ``echo_node.processing.run_job(node, job_id, models)``
and records what comes back on the job row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class JobOutcome:
    state: Literal["done", "skipped"]  # skipped: nothing processable, with the reason
    message: str
    # One entry a step, e.g. {"step": "analyze", "sop_instance_uid": ..., "seconds": 1.2}.
    steps: list[dict[str, Any]] = field(default_factory=list)


class TransientJobError(RuntimeError):
    """A fault that may pass (database busy, disk full for a moment): retry with backoff.

    Any other exception ends the job as failed with its text, without retry.
    """
