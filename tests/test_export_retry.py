"""A destination that is down: retries with doubling backoff, then delivery once, or failed."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from sqlalchemy import select

from echo_node.export.backlog import destination_backlog
from echo_node.export.deliver import DeliveryReport, deliver_due, deliver_pass
from echo_node.export.queue import claim_due, queue_deliveries
from echo_node.node import open_node
from echo_node.settings import load_settings
from storage.models import Delivery, Output
from storage.queue import utc_now
from tests.orthanc import orthanc_factory  # noqa: F401
from tests.test_export_support import (
    JPEG_FILE,
    PLAIN_FILE,
    deliveries,
    export_node,
    make_results,
    node_environ,
)

BACKOFF_S = 0.5


def test_down_destination_is_retried_with_backoff_then_delivered_once(
    orthanc_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = orthanc_factory()  # ports chosen, not started: connections are refused
    node = export_node(
        tmp_path / "data", [pacs.dimse_destination("pacs")], retry_backoff_s=str(BACKOFF_S)
    )
    (result,) = make_results(node, tmp_path, [PLAIN_FILE])

    (report,) = deliver_pass(node, "w1")
    assert report.state == "pending"
    (row,) = deliveries(node)
    assert (row.state, row.attempts, row.lease_until) == ("pending", 1, None)
    assert row.last_error is not None and "could not be reached" in row.last_error
    first_wait = row.next_attempt_at
    # Not due during the backoff.
    assert deliver_due(node, "w1") == 0

    _wait_until_due(node)
    (report,) = deliver_pass(node, "w1")
    assert report.state == "pending"
    (row,) = deliveries(node)
    assert row.attempts == 2
    # The second delay is twice the first (retry_backoff_s, doubling).
    second_delay = (row.next_attempt_at - first_wait).total_seconds()
    assert second_delay >= 2 * BACKOFF_S - 0.05

    pacs.start()
    _wait_until_due(node)
    (report,) = deliver_pass(node, "w1")
    assert report.state == "sent"
    (row,) = deliveries(node)
    assert (row.state, row.attempts, row.last_error) == ("sent", 3, None)
    # Nothing more is sent: our row stays at its 3 attempts and Orthanc holds one copy.
    time.sleep(2 * BACKOFF_S)
    assert deliver_due(node, "w1") == 0
    assert deliveries(node)[0].attempts == 3
    assert pacs.sop_instance_uids() == [result.sop_instance_uid]
    assert dcmread(io.BytesIO(pacs.file(result.sop_instance_uid))) == result.dataset


def test_max_attempts_ends_failed_with_the_error(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory()
    node = export_node(
        tmp_path / "data",
        [pacs.dimse_destination("pacs"), pacs.dicomweb_destination("web")],
        retry_backoff_s="0",
        delivery_max_attempts="2",
    )
    make_results(node, tmp_path, [PLAIN_FILE])

    states = [sorted(r.state for r in deliver_pass(node, "w1")) for _ in range(3)]
    assert states == [["pending", "pending"], ["failed", "failed"], []]
    rows = {row.destination: row for row in deliveries(node)}
    assert {(r.state, r.attempts) for r in rows.values()} == {("failed", 2)}
    assert rows["pacs"].last_error is not None
    assert rows["pacs"].last_error.startswith("gave up after 2 attempts")
    assert "could not be reached" in rows["pacs"].last_error
    assert rows["web"].last_error is not None and "ConnectError" in rows["web"].last_error

    with node.sessions() as session:
        backlog = {b.destination: b for b in destination_backlog(session, ["pacs", "web"])}
    assert (backlog["pacs"].pending, backlog["pacs"].failed, backlog["pacs"].sent) == (0, 1, 0)
    assert backlog["web"].oldest_pending is None


def test_backlog_counts_per_destination(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory().start()
    down = orthanc_factory()
    node = export_node(
        tmp_path / "data",
        [pacs.dimse_destination("pacs"), down.dimse_destination("down")],
        retry_backoff_s="60",
    )
    make_results(node, tmp_path, [PLAIN_FILE, JPEG_FILE])
    assert deliver_due(node, "w1") == 4
    with node.sessions() as session:
        created = min(session.scalars(select(Output.created_at)))
        backlog = {b.destination: b for b in destination_backlog(session, ["pacs", "down", "x"])}
    assert (backlog["pacs"].pending, backlog["pacs"].sent, backlog["pacs"].failed) == (0, 2, 0)
    assert (backlog["down"].pending, backlog["down"].sent) == (2, 0)
    assert backlog["down"].oldest_pending == created
    assert (backlog["x"].pending, backlog["x"].sent, backlog["x"].oldest_pending) == (0, 0, None)


def test_two_workers_never_send_the_same_delivery(orthanc_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    pacs = orthanc_factory().start()
    node = export_node(tmp_path / "data", [pacs.dicomweb_destination("web")])
    results = make_results(node, tmp_path, [PLAIN_FILE] * 6)
    reports: dict[str, list[DeliveryReport]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(worker: str) -> None:
        start.wait()
        # One delivery per pass, so the two workers interleave claims.
        while batch := deliver_pass(node, worker, limit=1):
            reports[worker].extend(batch)

    threads = [threading.Thread(target=work, args=(w,)) for w in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    ids_a = {r.delivery_id for r in reports["a"]}
    ids_b = {r.delivery_id for r in reports["b"]}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 6
    assert [(r.state, r.attempts) for r in deliveries(node)] == [("sent", 1)] * 6
    assert sorted(pacs.sop_instance_uids()) == sorted(r.sop_instance_uid for r in results)


def _wait_until_due(node: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with node.sessions() as session:
            due = session.scalar(select(Delivery.next_attempt_at).order_by(Delivery.id))
        remaining = (due - utc_now()).total_seconds()
        if remaining <= 0:
            return
        assert time.monotonic() < deadline
        time.sleep(remaining + 0.01)


@pytest.mark.timeout(120)
def test_postgres_claims_skip_rows_another_worker_holds(postgres_url: str, tmp_path: Path) -> None:
    node = open_node(
        load_settings(
            environ={**node_environ(tmp_path / "data", []), "ECHO_NODE_DATABASE_URL": postgres_url}
        )
    )
    results = make_results(node, tmp_path, [PLAIN_FILE] * 4)
    with node.sessions.begin() as session:
        for result in results:
            output = session.get(Output, result.output_id)
            assert output is not None
            queue_deliveries(session, output, ["pg-dest"])
            queue_deliveries(session, output, ["pg-dest"])  # idempotent
    mine = {r.output_id for r in results}
    with node.sessions() as first, node.sessions() as second:
        # The first worker's transaction is still open (rows locked) when the second claims.
        claimed_a = claim_due(first, "a", 60, 2)
        claimed_b = claim_due(second, "b", 60, 1000)
        first.commit()
        second.commit()
    ids_a = {c.delivery_id for c in claimed_a}
    ids_b = {c.delivery_id for c in claimed_b}
    assert len(ids_a) == 2 and not ids_a & ids_b
    with node.sessions() as session:
        rows = list(session.scalars(select(Delivery).join(Output).where(Output.id.in_(mine))))
    assert len(rows) == 4
    assert {row.id for row in rows} <= ids_a | ids_b
    assert all(row.attempts == 1 and row.lease_until is not None for row in rows)
    # Leased rows are not due for anyone until the lease expires.
    with node.sessions.begin() as session:
        assert not {c.delivery_id for c in claim_due(session, "c", 60, 100)} & (ids_a | ids_b)


def test_pass_gives_back_what_it_has_no_lease_time_for(
    orthanc_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = orthanc_factory().start()
    destinations = [pacs.dimse_destination("pacs"), pacs.dicomweb_destination("web")]
    # A lease so short that the pass must not start any send within it.
    node = export_node(tmp_path / "data", destinations, job_lease_s="0.001")
    make_results(node, tmp_path, [PLAIN_FILE])
    reports = deliver_pass(node, "w1")
    assert [(r.state, r.message) for r in reports] == [
        ("pending", "not attempted: the pass ran out of time")
    ] * 2
    assert [(r.state, r.attempts, r.lease_until) for r in deliveries(node)] == [
        ("pending", 0, None)
    ] * 2
    assert pacs.instances() == []
