"""One self-test: a phantom study through the node's own front door, compared with its truth.

1. A fresh phantom study (ai/phantom: PLAX, A4C, TR CW, mitral PW; always the same anatomy,
   seed SEED, so a difference from one day to the next is the node's, new UIDs each run) is
   written to a temporary directory with its ground truth.
2. Its study row is made first, marked QA (``Study.qa``): the node processes it like any study
   but sends its results nowhere (echo_node.processing.run).
3. The clips go to the running node by C-STORE on loopback (its dimse_port, the node's own AE
   title as calling AE): the SCP, the Ingestor, the stable-study sweep and a worker do what they
   do for a scanner's study.
4. Once the job made after the last clip has ended, its report is built again from the job's
   record (the values its SR holds) and compared with the truth (compare.py).
5. The study goes, files and rows, the way retention deletes one (a crash in between is
   finished by the next self-test); the outcome is kept in ``selftests``.
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select, update

from ai.findings import PipelineStatus
from ai.result_json import result_from_json
from echo_node.export.dimse import store_files
from echo_node.export.outcome import Item
from echo_node.jobs import queue
from echo_node.node import Node
from echo_node.results.report import SourceClip, build_report
from echo_node.retention.sweep import delete_study_rows, finish_removals, remove_files
from echo_node.selftest.compare import Verdict, compare
from echo_node.settings import Destination
from storage.index import ensure_study
from storage.models import (
    CLIP_RESULT_KEY,
    Instance,
    Job,
    JobClip,
    RetentionDeletion,
    SelfTest,
    Series,
    Study,
)

logger = logging.getLogger(__name__)

SEED = 1  # the phantom patient of every self-test (its Doppler is within 5 % at this size)
_ENDED = (queue.DONE, queue.SKIPPED, queue.FAILED)
_POLL_S = 1.0
DELETION_KIND = "selftest"  # RetentionDeletion.kind of a self-test study's removal


class SelftestError(RuntimeError):
    """The self-test could not get as far as comparing values; says where it stopped."""


@dataclass(frozen=True)
class SelftestResult:
    selftest_id: int
    passed: bool
    summary: str
    study_instance_uid: str | None
    seconds: float
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.selftest_id,
            "passed": self.passed,
            "summary": self.summary,
            "study_instance_uid": self.study_instance_uid,
            "seconds": round(self.seconds, 1),
            "comparisons": self.comparisons,
            "notes": self.notes,
        }


def run_selftest(
    node: Node, trigger: str = "command", *, keep: bool = False, timeout_s: float | None = None
) -> SelftestResult:
    """Run one self-test against the node listening on the settings' dimse_port; never raises
    for a failure of the node (that is the result), only for a database that cannot record."""
    settings = node.settings
    timeout = timeout_s if timeout_s is not None else settings.selftest_timeout_s
    started, clock = datetime.now(UTC), time.perf_counter()
    with node.sessions.begin() as session:
        record = SelfTest(started_at=started, trigger=trigger)
        session.add(record)
        session.flush()
        selftest_id = record.id
    remove_leftovers(node, started - timedelta(seconds=2 * timeout))
    study_uid: str | None = None
    verdict: Verdict | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="echo-node-selftest-") as work:
            paths, truths, study_uid = _phantom(Path(work))
            _register(node, study_uid)
            _send(node, paths)
            job_id = _wait_for_job(node, study_uid, time.monotonic() + timeout, timeout)
            verdict = _verdict(node, job_id, truths)
        summary = _summary(verdict)
    except SelftestError as exc:
        summary = f"FAIL: {exc}"
    except Exception as exc:  # recorded as a failure, with the traceback in the log
        logger.exception("self-test stopped by an error", extra={"selftest_id": selftest_id})
        summary = f"FAIL: {type(exc).__name__}: {exc}"
    finally:
        if study_uid is not None and not keep:
            remove_study(node, study_uid)
    passed = verdict is not None and verdict.passed
    result = SelftestResult(
        selftest_id,
        passed,
        summary,
        study_uid,
        time.perf_counter() - clock,
        [c.as_dict() for c in verdict.comparisons] if verdict else [],
        list(verdict.notes) if verdict else [],
    )
    with node.sessions.begin() as session:
        session.execute(
            update(SelfTest)
            .where(SelfTest.id == selftest_id)
            .values(
                finished_at=datetime.now(UTC),
                passed=passed,
                study_instance_uid=study_uid,
                summary=summary,
                detail=result.as_dict(),
            )
        )
    (logger.info if passed else logger.error)(
        "self-test " + ("passed" if passed else "FAILED"),
        extra={"selftest_id": selftest_id, "summary": summary, "trigger": trigger},
    )
    return result


def _phantom(work: Path) -> tuple[list[Path], dict[str, dict[str, Any]], str]:
    from ai.phantom.study import DEFAULT_UID_ROOT, generate_study

    # New UIDs each run (a root of its own), the same anatomy (the seed). Full-width frames
    # keep the classical Doppler engine within its tolerance; one cycle at 20 frames/s keeps
    # the 2D clips (and their processing) small.
    root = f"{DEFAULT_UID_ROOT}{secrets.randbelow(10**12) + 1}."
    paths = generate_study(
        work, SEED, uid_root=root, rows=480, columns=640, cycles=1, frame_rate=20.0
    )
    truths: dict[str, dict[str, Any]] = {}
    study_uid = ""
    for path in paths:
        document = json.loads(path.with_suffix(".json").read_text())
        truths[document["sop_instance_uid"]] = document["expected"]
        study_uid = document["study_instance_uid"]
    return paths, truths, study_uid


def _register(node: Node, study_uid: str) -> None:
    with node.sessions.begin() as session:
        study, _ = ensure_study(session, study_uid, datetime.now(UTC))
        study.qa = True


def _send(node: Node, paths: list[Path]) -> None:
    """C-STORE to the node's own listener, as a scanner would."""
    settings = node.settings
    if not settings.dimse_enabled or not settings.dimse_port:
        raise SelftestError("needs the node's DIMSE listener in the clear (dimse_port)")
    host = settings.bind if settings.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    front_door = Destination(
        name="self-test",
        kind="dimse",
        ae_title=settings.ae_title,
        host=host,
        port=settings.dimse_port,
    )
    items = []
    for key, path in enumerate(paths):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        items.append(
            Item(
                key,
                path,
                str(header.SOPInstanceUID),
                str(header.SOPClassUID),
                str(header.file_meta.TransferSyntaxUID),
            )
        )
    results = store_files(
        front_door,
        items,
        calling_ae=settings.ae_title,
        timeout_s=settings.network_timeout_s,
        max_pdu=settings.max_pdu_size,
    )
    refused = [result for result in results.values() if not result.ok]
    if refused:
        first = refused[0]
        hint = ""
        if not any(result.ok for result in results.values()):
            hint = (
                f"; is `echo-node serve` running on {host}:{settings.dimse_port}, and do "
                f'allowed_peers let "{settings.ae_title}@{host}" in?'
            )
        raise SelftestError(
            f"the node took {len(items) - len(refused)} of {len(items)} phantom clips: "
            f"{first.error}{hint}"
        )


def _wait_for_job(node: Node, study_uid: str, deadline: float, timeout: float) -> int:
    """The job the stable-study sweep made after the last clip arrived, once it has ended."""
    while True:
        with node.sessions() as session:
            study = session.scalars(
                select(Study).where(Study.study_instance_uid == study_uid)
            ).one()
            job = session.scalars(
                select(Job)
                .where(
                    Job.study_id == study.id,
                    Job.reason == "stable",
                    Job.created_at >= study.last_received_at,
                )
                .order_by(Job.id.desc())
            ).first()
            if job is not None and job.state in _ENDED:
                if job.state != queue.DONE:
                    raise SelftestError(
                        f"its job {job.id} ended {job.state}: {job.error or job.message}"
                    )
                return job.id
        if time.monotonic() > deadline:
            where = "queued" if job is None else f"job {job.id} {job.state}"
            raise SelftestError(
                f"not processed within {timeout:g} s ({where}): does a worker run "
                "(process_enabled, or `echo-node worker`)?"
            )
        time.sleep(_POLL_S)


def _verdict(node: Node, job_id: int, truths: dict[str, dict[str, Any]]) -> Verdict:
    """The job's report, built again from its record as its SR was, against the truth."""
    pairs, measured = [], set()
    with node.sessions() as session:
        clips = session.scalars(select(JobClip).where(JobClip.job_id == job_id)).all()
        for clip in clips:
            instance = session.get(Instance, clip.instance_id) if clip.instance_id else None
            if instance is None or CLIP_RESULT_KEY not in clip.detail:
                continue
            header = pydicom.dcmread(node.store.root / instance.path, stop_before_pixels=True)
            result = result_from_json(clip.detail[CLIP_RESULT_KEY])
            pairs.append(SourceClip(header, result))
            for pipeline in result.pipelines:
                if pipeline.status is PipelineStatus.OK:
                    measured |= {finding.name for finding in pipeline.findings}
    if not pairs:
        raise SelftestError(f"job {job_id} recorded no clip")
    return compare(build_report(pairs), truths, measured)


def _summary(verdict: Verdict) -> str:
    if verdict.passed:
        return f"PASS: {len(verdict.comparisons)} value(s) within tolerance"
    failures = "; ".join(c.describe() for c in verdict.failures) or "no value to compare"
    return f"FAIL: {failures}"


def remove_study(node: Node, study_uid: str) -> bool:
    """Every file and row of a self-test study, as retention removes a study: rows and the
    list of files in one transaction, then the files. False if there was no such QA study."""
    now = datetime.now(UTC)
    with node.sessions.begin() as session:
        study = session.scalars(
            select(Study).where(Study.study_instance_uid == study_uid, Study.qa.is_(True))
        ).first()
        if study is None:
            return False
        files = list(
            session.scalars(
                select(Instance.path)
                .join(Series, Series.id == Instance.series_id)
                .where(Series.study_id == study.id)
            )
        )
        delete_study_rows(session, study.id)
        record = RetentionDeletion(
            study_instance_uid=study_uid,
            kind=DELETION_KIND,
            reason="self-test study, compared and removed",
            instances=len(files),
            bytes=0,
            files=files,
            deleted_at=now,
            files_removed_at=None,
        )
        session.add(record)
        session.flush()
        record_id = record.id
    remove_files(node.store, files)
    with node.sessions.begin() as session:
        session.execute(
            update(RetentionDeletion)
            .where(RetentionDeletion.id == record_id)
            .values(files_removed_at=datetime.now(UTC))
        )
    return True


def remove_leftovers(node: Node, before: datetime) -> int:
    """Self-test studies an interrupted run left (made before ``before``), and any removal a
    crash cut short."""
    finish_removals(node.sessions, node.store)
    with node.sessions() as session:
        stale = list(
            session.scalars(
                select(Study.study_instance_uid).where(
                    Study.qa.is_(True), Study.first_received_at < before
                )
            )
        )
    return sum(remove_study(node, uid) for uid in stale)
