"""Shared pieces of the export tests: a node with destinations and results to deliver."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from echo_node.cli.importer import import_file
from echo_node.export.queue import queue_deliveries
from echo_node.node import Node, open_node
from echo_node.settings import Destination, load_settings
from storage.models import Delivery, Instance, Job, Output, Study
from tests.conftest import us_file

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
# Real ultrasound files: one JPEG baseline multi-frame, one uncompressed single frame.
JPEG_FILE = "examples_ybr_color.dcm"
PLAIN_FILE = "examples_rgb_color.dcm"


def export_node(data_dir: Path, destinations: Sequence[Destination], **extra: str) -> Node:
    return open_node(load_settings(environ=node_environ(data_dir, destinations, **extra)))


def node_environ(
    data_dir: Path, destinations: Sequence[Destination], **extra: str
) -> dict[str, str]:
    """The same settings as environment variables, for `echo-node` run as a process."""
    environ = {
        "ECHO_NODE_DATA_DIR": str(data_dir),
        "ECHO_NODE_DESTINATIONS": json.dumps([d.model_dump() for d in destinations]),
        "ECHO_NODE_NETWORK_TIMEOUT_S": "10",
        "ECHO_NODE_LOG_LEVEL": "WARNING",
    }
    environ.update({f"ECHO_NODE_{k.upper()}": v for k, v in extra.items()})
    return environ


@dataclass(frozen=True)
class Result:
    output_id: int
    sop_instance_uid: str
    study_instance_uid: str
    dataset: Dataset  # as ingested


def make_results(
    node: Node, tmp_path: Path, names: Sequence[str], *, study_uid: str | None = None
) -> list[Result]:
    """Ingest re-UIDed copies of real files into one study and record them as a job's outputs."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    sources = tmp_path / "sources"
    sources.mkdir(exist_ok=True)
    made: list[tuple[str, Dataset]] = []
    for name in names:
        dataset = dcmread(us_file(name))
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        path = sources / f"{dataset.SOPInstanceUID}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        result = import_file(node.ingestor, path)
        assert result.outcome == "stored", result.reason
        made.append((dataset.SOPInstanceUID, dcmread(path)))
    now = datetime.now(UTC)
    results = []
    with node.sessions.begin() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == study_uid)).one()
        job = Job(
            study_id=study.id,
            reason="stable",
            state="done",
            attempts=1,
            not_before=now,
            created_at=now,
        )
        session.add(job)
        session.flush()
        for sop_uid, dataset in made:
            instance = session.scalars(
                select(Instance).where(Instance.sop_instance_uid == sop_uid)
            ).one()
            output = Output(
                job_id=job.id,
                study_id=study.id,
                instance_id=instance.id,
                kind="sc",
                sop_instance_uid=sop_uid,
                created_at=now,
            )
            session.add(output)
            session.flush()
            queue_deliveries(session, output, node.settings.destinations)
            results.append(Result(output.id, sop_uid, study_uid, dataset))
    return results


def deliveries(node: Node) -> list[Delivery]:
    with node.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))
