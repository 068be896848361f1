"""The same ingest on PostgreSQL: migrations apply, concurrent senders lose nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import create_engine, text

from tests.conftest import DCMTK_ENV, NodeProcess, free_port, us_file
from tests.dicom_files import reuid_copies, storescu


def test_node_on_postgresql(
    node_factory: type[NodeProcess], tmp_path: Path, postgres_url: str
) -> None:
    node = node_factory(
        tmp_path / "data", free_port(), {"database_url": postgres_url, "ingest_processes": "2"}
    ).start()
    source = us_file("OBXXXX1A_rle.dcm")
    assert storescu(node.port, [source, source]).returncode == 0
    batches = [
        reuid_copies(us_file("examples_ybr_color.dcm"), tmp_path / f"b{i}", 20) for i in range(4)
    ]
    senders = [
        subprocess.Popen(
            ["storescu", "-xy", "-aec", "ECHONODE", "127.0.0.1", str(node.port), *map(str, batch)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for batch in batches
    ]
    assert [sender.wait(180) for sender in senders] == [0, 0, 0, 0]
    assert node.stop() == 0

    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        stored = dict(
            connection.execute(text("SELECT sop_instance_uid, path FROM instances")).all()
        )
    engine.dispose()
    assert len(stored) == 81  # the RLE file once, 80 re-UIDed clips
    for path in [source, *batches[0], *batches[3]]:
        sent = dcmread(path)
        assert dcmread(node.data_dir / stored[sent.SOPInstanceUID]) == sent
