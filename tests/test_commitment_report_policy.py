"""Storage commitment reports the node sends on associations it opens: allowed_peers applies to
them, and a retry does not read again the files it hashed before unless they changed.

The requester is a real pynetdicom AE listening on loopback (127.0.0.2 for the address no rule
allows); the reporter is the node's own, run in the test process.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from echo_node.dimse.commitment_report import Reporter
from echo_node.ingest import Ingestor, Peer
from echo_node.metrics.instruments import create_metrics
from echo_node.settings import load_settings
from storage.commitments import Reference, record_request
from storage.db import make_engine, migrate, session_factory
from storage.files import FileStore
from storage.models import Commitment
from storage.queue import PENDING, SENT
from tests.conftest import free_port, us_file

FILES = ["US1_J2KR.dcm", "examples_ybr_color.dcm"]


class Requester:
    """A modality waiting for its N-EVENT-REPORT (it takes the SCU role, the node the SCP)."""

    def __init__(self, host: str) -> None:
        self.port = free_port()
        self.reports: list[int] = []
        self.arrived = threading.Event()
        ae = AE(ae_title="MODALITY1")
        ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        self.server = ae.start_server(
            (host, self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report)],
        )

    def _on_report(self, event: evt.Event) -> tuple[int, None]:
        self.reports.append(int(event.event_type))
        self.arrived.set()
        return 0x0000, None

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], FileStore, list[Reference]]]:
    """A data directory holding two real ultrasound files, and references to them."""
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    store = FileStore(tmp_path / "data")
    store.prepare()
    ingestor = Ingestor(store, sessions, create_metrics())
    references = []
    for name in FILES:
        temp = store.new_temp_path()
        shutil.copyfile(us_file(name), temp)
        assert ingestor.ingest(temp, Peer("MODALITY1", "127.0.0.1", "dimse")).acknowledged
        dataset = dcmread(us_file(name), stop_before_pixels=True)
        references.append(Reference(str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)))
    yield sessions, store, references
    engine.dispose()


def _reporter(sessions: sessionmaker[Session], store: FileStore, **settings: str) -> Reporter:
    environ = {
        "ECHO_NODE_DATA_DIR": str(store.root),
        "ECHO_NODE_RETRY_BACKOFF_S": "0",
        "ECHO_NODE_NETWORK_TIMEOUT_S": "5",
        **{f"ECHO_NODE_{key.upper()}": value for key, value in settings.items()},
    }
    return Reporter(load_settings(environ=environ), sessions, store)


def _request(sessions: sessionmaker[Session], references: list[Reference]) -> None:
    with sessions.begin() as session:
        record_request(session, "2.25.4242", "MODALITY1", "127.0.0.1", references)


def _row(sessions: sessionmaker[Session]) -> Commitment:
    with sessions() as session:
        return session.scalars(select(Commitment)).one()


def test_a_report_goes_only_to_an_address_allowed_peers_admits(
    held: tuple[sessionmaker[Session], FileStore, list[Reference]],
) -> None:
    sessions, store, references = held
    requester = Requester("127.0.0.2")
    try:
        _request(sessions, references)
        target = f"MODALITY1@127.0.0.2:{requester.port}"
        # The requester's AE title is allowed, but only from 127.0.0.1: not where the report
        # would go.
        refused = _reporter(
            sessions, store, allowed_peers="MODALITY1@127.0.0.1", commitment_peers=target
        )
        (outcome,) = refused.report_due()
        assert outcome.state == PENDING
        assert outcome.error == "MODALITY1@127.0.0.2 is not in allowed_peers"
        assert not requester.arrived.wait(1.0)  # no association was even opened
        assert _row(sessions).last_error == outcome.error

        admitted = _reporter(
            sessions, store, allowed_peers="MODALITY1@127.0.0.0/8", commitment_peers=target
        )
        (outcome,) = admitted.report_due()
        assert (outcome.state, outcome.error) == (SENT, "")
        assert requester.arrived.wait(5) and requester.reports == [1]
    finally:
        requester.close()


def test_a_retry_hashes_only_the_files_that_changed_since_the_last_attempt(
    held: tuple[sessionmaker[Session], FileStore, list[Reference]],
) -> None:
    sessions, store, references = held
    _request(sessions, references)
    unreachable = _reporter(sessions, store, commitment_peers=f"MODALITY1@127.0.0.1:{free_port()}")

    (first,) = unreachable.report_due()
    assert first.state == PENDING and "could not be reached" in first.error
    assert (first.files_hashed, first.files_unchanged) == (2, 0)
    recorded = _row(sessions).file_hashes
    assert recorded is not None and len(recorded) == 2

    (second,) = unreachable.report_due()
    assert (second.files_hashed, second.files_unchanged, second.failed) == (0, 2, 0)

    # One file is altered in place (same size, same inode): it is read again and found changed.
    with sessions() as session:
        row = session.scalars(select(Commitment)).one()
    changed = store.root / sorted(row.file_hashes or {})[0]
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    (third,) = unreachable.report_due()
    assert (third.files_hashed, third.files_unchanged, third.failed) == (1, 1, 1)

    requester = Requester("127.0.0.1")
    try:
        reachable = _reporter(
            sessions, store, commitment_peers=f"MODALITY1@127.0.0.1:{requester.port}"
        )
        (sent,) = reachable.report_due()
        assert (sent.state, sent.files_hashed, sent.files_unchanged) == (SENT, 0, 2)
        assert requester.arrived.wait(5) and requester.reports == [2]  # some failed
    finally:
        requester.close()
    assert _row(sessions).failed_count == 1


def test_a_name_is_checked_by_each_address_it_resolves_to(
    held: tuple[sessionmaker[Session], FileStore, list[Reference]],
) -> None:
    """ "localhost" may resolve to ::1 before 127.0.0.1: only an address a rule admits is used."""
    sessions, store, references = held
    requester = Requester("127.0.0.1")
    try:
        _request(sessions, references)
        target = f"MODALITY1@localhost:{requester.port}"
        refused = _reporter(
            sessions, store, allowed_peers="MODALITY1@10.0.0.0/8", commitment_peers=target
        )
        (outcome,) = refused.report_due()
        assert outcome.state == PENDING and outcome.error.endswith("is not in allowed_peers")
        admitted = _reporter(
            sessions, store, allowed_peers="MODALITY1@127.0.0.1", commitment_peers=target
        )
        (outcome,) = admitted.report_due()
        assert (outcome.state, outcome.error) == (SENT, "")
        assert requester.arrived.wait(5)
    finally:
        requester.close()
