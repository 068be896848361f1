"""Storage commitment rows and the instance check, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from echo_node.ingest import Ingestor, Peer
from echo_node.metrics.instruments import create_metrics
from storage.commitments import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    Reference,
    check_instances,
    claim_due,
    indexed_files,
    mark_retry,
    mark_sent,
    record_request,
)
from storage.db import make_engine, migrate, session_factory
from storage.files import FileStore
from storage.models import Commitment
from storage.queue import FAILED, PENDING, SENT
from tests.conftest import us_file

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'node.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def test_a_repeated_request_replaces_the_earlier_one_and_is_due_again(
    sessions: sessionmaker[Session],
) -> None:
    first = [Reference(US_IMAGE, "1.2.3.1")]
    with sessions.begin() as session:
        row_id = record_request(session, "2.25.7", "US1", "10.0.0.1", first)
        other_ae = record_request(session, "2.25.7", "US2", "10.0.0.2", first)
    with sessions.begin() as session:
        (claim,) = claim_due(session, lease_s=60, limit=10, commitment_id=row_id)
        assert mark_sent(session, claim, event_type=1, failed_count=0)
    again = [Reference(US_IMAGE, "1.2.3.1"), Reference(US_IMAGE, "1.2.3.2")]
    with sessions.begin() as session:
        assert record_request(session, "2.25.7", "US1", "10.0.0.1", again) == row_id
    with sessions.begin() as session:
        rows = {row.calling_ae: row for row in session.scalars(select(Commitment))}
        assert rows["US1"].state == PENDING and rows["US1"].attempts == 0
        assert rows["US1"].references == [[US_IMAGE, "1.2.3.1"], [US_IMAGE, "1.2.3.2"]]
        assert rows["US2"].id == other_ae


def test_a_leased_report_is_not_claimed_twice_and_gives_up_after_the_last_attempt(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        record_request(session, "2.25.8", "US1", None, [Reference(US_IMAGE, "1.2.3.1")])
    states = []
    for _ in range(3):
        with sessions.begin() as session:
            (claim,) = claim_due(session, lease_s=60, limit=10)
            assert claim_due(session, lease_s=60, limit=10) == []  # held under the lease
            states.append(mark_retry(session, claim, "unreachable", backoff_s=0, max_attempts=3))
    assert states == [PENDING, PENDING, FAILED]
    with sessions.begin() as session:
        assert claim_due(session, lease_s=60, limit=10) == []
        row = session.scalars(select(Commitment)).one()
        assert row.attempts == 3 and "gave up after 3 attempts" in (row.last_error or "")
        assert row.state != SENT


def test_only_the_newest_version_intact_on_disk_is_committed(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "data")
    store.prepare()
    ingestor = Ingestor(store, sessions, create_metrics())
    source = us_file("US1_J2KR.dcm")
    changed = dcmread(source)
    changed.InstitutionName = "Another Hospital"
    changed_path = tmp_path / "changed.dcm"
    changed.save_as(changed_path)
    results = []
    for path in (source, changed_path):  # version 1, then version 2 of the same SOP instance
        temp = store.new_temp_path()
        shutil.copyfile(path, temp)
        results.append(ingestor.ingest(temp, Peer("US1", "127.0.0.1", "dimse")))
    assert [result.version for result in results] == [1, 2]
    uid = str(changed.SOPInstanceUID)
    references = [
        Reference(US_IMAGE, uid),
        Reference("1.2.840.10008.5.1.4.1.1.3.1", uid),  # another SOP class than stored
        Reference(US_IMAGE, "1.2.826.0.1.3680043.8.498.2"),  # never received
    ]

    def verdicts() -> list[int | None]:
        with sessions.begin() as session:
            indexed = indexed_files(session, {ref.sop_instance_uid for ref in references})
        return [v.failure_reason for v in check_instances(store, references, indexed)]

    old, new = (result.path for result in results)
    assert old is not None and new is not None
    old.write_bytes(b"damaged")  # an older version does not matter: the newest is served
    assert verdicts() == [None, CLASS_INSTANCE_CONFLICT, NO_SUCH_OBJECT_INSTANCE]
    data = bytearray(new.read_bytes())
    data[len(data) // 2] ^= 0x01
    new.write_bytes(bytes(data))
    assert verdicts()[0] == PROCESSING_FAILURE
    new.unlink()
    assert verdicts()[0] == NO_SUCH_OBJECT_INSTANCE
