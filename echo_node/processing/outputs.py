"""The run's result objects: one SR for the study, one overlay SC per clip the report has a
value from, stored.

Each object is written as a Part 10 file into the store's tmp/, checked and hashed by the same
Ingestor every received instance goes through, and left there (staged): it takes its final name
and its instance row only in the job's closing transaction (record.py), marked as the node's own
(OWN_OUTPUT_ADDRESS) so it never makes a job of its own. A job that fails before that leaves no
output in the study; `discard` removes its staged files.

A job is a run of its study (echo_node/results/series.py): its SR and overlays go into series
numbered and described by run, dated by the run's start, and name each other: each overlay
references the run's SR (its UID is fixed before the overlays are written), and the SR lists
the overlays as pertinent evidence.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from ai.decode import load_clip
from echo_node.ingest import Peer, RejectedInstance, Staged, read_header
from echo_node.jobs.outcome import TransientJobError
from echo_node.jobs.selection import OWN_OUTPUT_ADDRESS
from echo_node.node import Node
from echo_node.processing.analysis import ClipRun
from echo_node.results import (
    DeviceInfo,
    SourceClip,
    build_overlay_sc,
    build_sr,
    plan_for,
    render_for,
)
from echo_node.results.report import Report, build_report
from echo_node.results.series import Reference, overlay_series, report_series
from echo_node.results.sr import COMPREHENSIVE_SR
from echo_node.settings import Settings

logger = logging.getLogger(__name__)

_OWN = Peer(ae_title=None, address=OWN_OUTPUT_ADDRESS, transport="node")


@dataclass(frozen=True)
class StoredOutput:
    kind: str  # "sr", "sc", or a document of processing/documents.py ("tid1500", "pdf")
    sop_instance_uid: str
    staged: Staged


def discard(outputs: Sequence[StoredOutput]) -> None:
    """Remove the staged files of outputs that never got their row (a failed job's)."""
    for output in outputs:
        output.staged.temp.unlink(missing_ok=True)


def device_info(settings: Settings) -> DeviceInfo:
    """The node as SR device observer. Unless set, its UID follows from the AE title and the
    database, so it is stable for an installation and the same for every worker sharing one
    queue."""
    uid = settings.device_uid or generate_uid(
        entropy_srcs=[settings.ae_title, settings.resolved_database_url]
    )
    return DeviceInfo(ae_title=settings.ae_title, device_uid=str(uid))


@dataclass(frozen=True)
class Run:
    """One run of a study: its number among the study's runs, when it started, and the UIDs its
    SR will have, known before anything is written so the overlays can name the SR."""

    number: int
    started: datetime.datetime = field(default_factory=datetime.datetime.now)
    sr_uid: str = field(default_factory=lambda: str(generate_uid()))
    sr_series_uid: str = field(default_factory=lambda: str(generate_uid()))

    @property
    def report(self) -> Reference:
        return Reference(COMPREHENSIVE_SR, self.sr_uid, self.sr_series_uid)


def write_sr(
    node: Node,
    runs: Sequence[ClipRun],
    predecessor: Dataset | None,
    steps: list[dict[str, Any]],
    run: Run | None = None,
    overlays: Sequence[Reference] = (),
) -> StoredOutput:
    """One Comprehensive SR over every processable clip of the study (measured or not: the SR
    says what was not measured and why), in the run's report series, listing its overlays."""
    run = run or Run(1)
    started = time.perf_counter()
    sr = build_sr(
        [SourceClip(clip.header, clip.result) for clip in runs],
        node=device_info(node.settings),
        series_uid=run.sr_series_uid,
        instance_uid=run.sr_uid,
        series=report_series(run.number, run.started),
        predecessor=predecessor,
        template=node.settings.sr_template,
        overlays=overlays,
    )
    stored = store(node, sr, "sr")
    steps.append(_step("sr", stored.sop_instance_uid, started))
    return stored


def study_report(runs: Sequence[ClipRun]) -> Report:
    """The report model of the run: what the SR and the overlays print."""
    return build_report([SourceClip(run.header, run.result) for run in runs])


@dataclass
class OverlaySeries:
    """The run's overlays: one new series of the study, an SC per clip the report has a value
    from."""

    node: Node
    run: Run = field(default_factory=lambda: Run(1))
    series_uid: str = field(default_factory=lambda: str(generate_uid()))
    written: list[Reference] = field(default_factory=list)

    def write(
        self, run: ClipRun, report: Report, steps: list[dict[str, Any]]
    ) -> StoredOutput | None:
        """Draw what `report` reports from the clip over its frames and store the SC; None
        when it reports nothing from this clip (its values withheld, or taken from another)."""
        started = time.perf_counter()
        plan = plan_for(run.header, report, frame_time_ms=run.result.frame_time_ms)
        if plan.empty:
            return None
        # Decoded again: the run lets each clip's frames go once its pipelines are done, so a
        # study's clips are never all held decoded together, and the overlay can be drawn only
        # once every clip's values are in the report.
        clip = load_clip(run.source.path)
        frames = np.stack([clip.frames[index] for index in range(len(clip))])
        decoded = time.perf_counter() - started
        settings = self.node.settings
        sc = build_overlay_sc(
            run.header,
            render_for(run.header, frames, plan),
            node=device_info(settings),
            series_uid=self.series_uid,
            series=overlay_series(self.run.number, self.run.started),
            report=self.run.report,
            instance_number=len(self.written) + 1,
            transfer_syntax=JPEGBaseline8Bit if settings.overlay_jpeg else ExplicitVRLittleEndian,
        )
        output = store(self.node, sc, "sc")
        self.written.append(
            Reference(str(sc.SOPClassUID), output.sop_instance_uid, self.series_uid)
        )
        steps.append(
            _step(
                "sc",
                run.source.sop_instance_uid,
                started,
                output=output.sop_instance_uid,
                decoded=round(decoded, 4),
            )
        )
        return output


def store(node: Node, dataset: Dataset, kind: str) -> StoredOutput:
    temp = node.store.new_temp_path()
    try:
        dataset.save_as(temp, enforce_file_format=True)
        header = read_header(temp, str(dataset.SOPInstanceUID))
        staged = node.ingestor.stage(temp, header, _OWN)
    except OSError as error:  # disk full for a moment: worth another attempt
        temp.unlink(missing_ok=True)
        raise TransientJobError(f"writing {kind} {dataset.SOPInstanceUID}: {error}") from error
    except RejectedInstance as error:
        # Refused by our own ingest checks: a fault in what we built, not a passing one.
        temp.unlink(missing_ok=True)
        raise RuntimeError(f"{kind} {dataset.SOPInstanceUID} refused by ingest: {error}") from error
    logger.info("staged %s", kind, extra={"sop_instance_uid": str(dataset.SOPInstanceUID)})
    return StoredOutput(kind, str(dataset.SOPInstanceUID), staged)


def _step(name: str, uid: str, started: float, **extra: Any) -> dict[str, Any]:
    seconds = round(time.perf_counter() - started, 4)
    return {"step": name, "sop_instance_uid": uid, "seconds": seconds, **extra}
