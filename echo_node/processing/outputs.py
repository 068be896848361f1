"""The run's result objects: one SR for the study, one overlay SC per measured clip, stored.

Each object is written as a Part 10 file into the store's tmp/, checked and hashed by the same
Ingestor every received instance goes through, and left there (staged): it takes its final name
and its instance row only in the job's closing transaction (record.py), marked as the node's own
(OWN_OUTPUT_ADDRESS) so it never makes a job of its own. A job that fails before that leaves no
output in the study; `discard` removes its staged files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from echo_node.ingest import Peer, RejectedInstance, Staged, read_header
from echo_node.jobs.outcome import TransientJobError
from echo_node.jobs.selection import OWN_OUTPUT_ADDRESS
from echo_node.node import Node
from echo_node.processing.analysis import ClipRun
from echo_node.results import DeviceInfo, SourceClip, build_overlay_sc, build_sr
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


def write_sr(
    node: Node,
    runs: Sequence[ClipRun],
    predecessor: Dataset | None,
    steps: list[dict[str, Any]],
) -> StoredOutput:
    """One Comprehensive SR over every processable clip of the study (measured or not: the SR
    says what was not measured and why)."""
    started = time.perf_counter()
    sr = build_sr(
        [SourceClip(run.header, run.result) for run in runs],
        node=device_info(node.settings),
        predecessor=predecessor,
        template=node.settings.sr_template,
    )
    stored = store(node, sr, "sr")
    steps.append(_step("sr", stored.sop_instance_uid, started))
    return stored


@dataclass
class OverlaySeries:
    """The run's overlays: one new series of the study, an SC per clip with findings."""

    node: Node
    series_uid: str = field(default_factory=lambda: str(generate_uid()))
    written: int = 0

    def write(self, run: ClipRun, steps: list[dict[str, Any]]) -> StoredOutput | None:
        """Burn the clip's findings into its frames and store the SC; None without findings."""
        if not run.has_findings or run.frames is None:
            return None
        started = time.perf_counter()
        settings = self.node.settings
        sc = build_overlay_sc(
            run.header,
            run.frames,
            run.result,
            node=device_info(settings),
            series_uid=self.series_uid,
            instance_number=self.written + 1,
            transfer_syntax=JPEGBaseline8Bit if settings.overlay_jpeg else ExplicitVRLittleEndian,
        )
        output = store(self.node, sc, "sc")
        self.written += 1
        steps.append(
            _step("sc", run.source.sop_instance_uid, started, output=output.sop_instance_uid)
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
    logger.info("staged %s %s", kind, dataset.SOPInstanceUID)
    return StoredOutput(kind, str(dataset.SOPInstanceUID), staged)


def _step(name: str, uid: str, started: float, **extra: Any) -> dict[str, Any]:
    seconds = round(time.perf_counter() - started, 4)
    return {"step": name, "sop_instance_uid": uid, "seconds": seconds, **extra}
