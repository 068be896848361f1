"""The processing step of a study job: clips → views → pipelines → SR and overlays → PACS.

The worker (echo_node.jobs) claims a job and calls :func:`run_job`; this package never changes
the job's state, attempts or lease — it returns a JobOutcome the worker records.
"""

from echo_node.processing.run import run_job

__all__ = ["run_job"]
