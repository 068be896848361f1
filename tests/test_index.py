"""The instance index in plain SQL writes the rows the ORM wrote, field by field, on SQLite
and PostgreSQL; a race for the same new version on PostgreSQL ends as a duplicate."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from echo_node.ingest import Ingestor, Staged
from echo_node.metrics.instruments import create_metrics
from storage.db import make_engine, migrate, session_factory
from storage.files import FileStore
from storage.index import InstanceHeader, Receipt, add_instance, index_instance
from storage.models import Instance, Series, Study

T0 = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)


def _orm_insert_ignoring_conflict(session: Session, table: Any, values: dict[str, Any]) -> None:
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(module.insert(table).values(**values).on_conflict_do_nothing())


def orm_index(session: Session, header: InstanceHeader, receipt: Receipt) -> None:
    """The ORM path the node used before (storage/index.py find_version + add_instance at
    7a95f63), kept here as the reference the plain-SQL path must match."""
    if session.scalars(
        select(Instance).where(
            Instance.sop_instance_uid == header.sop_instance_uid,
            Instance.sha256 == receipt.sha256,
        )
    ).first():
        return
    _orm_insert_ignoring_conflict(
        session,
        Study.__table__,
        {
            "study_instance_uid": header.study_instance_uid,
            "first_received_at": receipt.received_at,
            "last_received_at": receipt.received_at,
        },
    )
    study = session.scalars(
        select(Study).where(Study.study_instance_uid == header.study_instance_uid)
    ).one()
    if receipt.new_content:
        study.last_received_at = max(study.last_received_at, receipt.received_at)
    for attribute in (
        "patient_name",
        "patient_id",
        "study_date",
        "study_time",
        "accession_number",
        "study_description",
    ):
        value = getattr(header, attribute)
        if value and not getattr(study, attribute):
            setattr(study, attribute, value)
    _orm_insert_ignoring_conflict(
        session,
        Series.__table__,
        {
            "study_id": study.id,
            "series_instance_uid": header.series_instance_uid,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
        },
    )
    series = session.scalars(
        select(Series).where(Series.series_instance_uid == header.series_instance_uid)
    ).one()
    latest = session.scalar(
        select(func.max(Instance.version)).where(
            Instance.sop_instance_uid == header.sop_instance_uid
        )
    )
    session.add(
        Instance(
            series_id=series.id,
            sop_instance_uid=header.sop_instance_uid,
            version=(latest or 0) + 1,
            sop_class_uid=header.sop_class_uid,
            transfer_syntax_uid=header.transfer_syntax_uid,
            number_of_frames=header.number_of_frames,
            size=receipt.size,
            sha256=receipt.sha256,
            path=receipt.path,
            source_ae=receipt.source_ae,
            source_address=receipt.source_address,
            received_at=receipt.received_at,
        )
    )
    session.flush()


def header(
    sop: str, study: str = "1.2.3", series: str = "1.2.3.1", **values: Any
) -> InstanceHeader:
    fields: dict[str, Any] = {
        "study_instance_uid": study,
        "series_instance_uid": series,
        "sop_instance_uid": sop,
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.3.1",
        "transfer_syntax_uid": "1.2.840.10008.1.2.4.50",
        "modality": "US",
        "number_of_frames": 60,
        "patient_name": None,
        "patient_id": None,
        "study_date": None,
        "study_time": None,
        "accession_number": None,
        "study_description": None,
        "series_number": "1",
        "series_description": None,
    }
    fields.update(values)
    return InstanceHeader(**fields)


def receipt(sha: str, seconds: float, new_content: bool = True) -> Receipt:
    return Receipt(
        sha256=sha * 64,
        size=1000 + int(seconds),
        path=f"instances/x/{sha}.dcm",
        source_ae="US1",
        source_address="10.0.0.1",
        received_at=T0 + timedelta(seconds=seconds),
        new_content=new_content,
    )


# Every case the rows depend on: new study and series, attributes missing then filled, an
# empty value, an instance received earlier than one already indexed (commits out of order),
# the node's own output (not new content), the same bytes again, other bytes (a version),
# a series and a study seen again, and None where a column allows it.
SCENARIO: list[tuple[InstanceHeader, Receipt]] = [
    (header("1.1", patient_name="DOE^J", study_date="20260301"), receipt("a", 0)),
    (header("1.2", patient_id="P1", patient_name="OTHER^X"), receipt("b", 5)),
    (header("1.3", accession_number="", study_time="0800"), receipt("c", 3)),
    (header("1.4", series="1.2.3.2", modality="SR", number_of_frames=None), receipt("d", 9, False)),
    (header("1.1", patient_name="DOE^J"), receipt("a", 12)),  # the same bytes again
    (header("1.1", study_description="Echo"), receipt("e", 15)),  # other bytes: version 2
    (header("1.1"), receipt("f", 16)),  # version 3
    (header("2.1", study="1.2.4", series="1.2.4.1", study_description="TTE"), receipt("g", 2)),
    (header("2.2", study="1.2.4", series="1.2.3.1"), receipt("h", 20)),  # a known series
    (header("2.3", study="1.2.4", series="1.2.4.1", series_number=None), receipt("i", 1, False)),
]


def _engine(kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> Engine:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    return engine


def _rows(engine: Engine) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of the three tables by its natural key, every column but the surrogate ids
    (PostgreSQL spends a sequence value on each ON CONFLICT DO NOTHING, so the ORM path's ids
    have gaps), foreign keys given as the UID they point to."""
    with engine.connect() as connection:

        def table(name: str) -> list[dict[str, Any]]:
            query = text(f"SELECT * FROM {name} ORDER BY id")
            return [dict(row._mapping) for row in connection.execute(query)]

        studies, series, instances = table("studies"), table("series"), table("instances")
    study_uid = {row.pop("id"): row["study_instance_uid"] for row in studies}
    series_uid = {row.pop("id"): row["series_instance_uid"] for row in series}
    for row in series:
        row["study_id"] = study_uid[row["study_id"]]
    for row in instances:
        row.pop("id")
        row["series_id"] = series_uid[row["series_id"]]
    return {
        "studies": {row["study_instance_uid"]: row for row in studies},
        "series": {row["series_instance_uid"]: row for row in series},
        "instances": {(row["sop_instance_uid"], row["version"]): row for row in instances},
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_plain_sql_index_writes_the_orm_rows_field_by_field(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    orm_engine = _engine(kind, tmp_path, "orm", request)
    # A second database on the same server: postgres_url gives a new one per call only once
    # per test, so the plain-SQL rows go to a schema-identical copy made here.
    if kind == "sqlite":
        core_engine = _engine(kind, tmp_path, "core", request)
    else:
        core_engine = _second_postgres(orm_engine)
    try:
        outcomes = []
        for one_header, one_receipt in SCENARIO:
            with session_factory(orm_engine).begin() as session:
                orm_index(session, one_header, one_receipt)
            with session_factory(core_engine).begin() as session:
                indexed = index_instance(session, one_header, one_receipt)
            outcomes.append((indexed.version, indexed.duplicate))
        assert outcomes == [
            (1, False),
            (1, False),
            (1, False),
            (1, False),
            (1, True),
            (2, False),
            (3, False),
            (1, False),
            (1, False),
            (1, False),
        ]
        orm_rows, core_rows = _rows(orm_engine), _rows(core_engine)
        for table in ("studies", "series", "instances"):
            assert core_rows[table].keys() == orm_rows[table].keys(), table
            for key, orm_row in orm_rows[table].items():
                assert core_rows[table][key].keys() == orm_row.keys()
                for column, value in orm_row.items():
                    assert core_rows[table][key][column] == value, (table, key, column)
        assert len(core_rows["instances"]) == 9
        study = core_rows["studies"]["1.2.3"]
        assert study["patient_name"] == "DOE^J" and study["patient_id"] == "P1"
    finally:
        orm_engine.dispose()
        core_engine.dispose()


def _second_postgres(engine: Engine) -> Engine:
    name = f"{engine.url.database}_core"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    second = make_engine(engine.url.set(database=name).render_as_string(hide_password=False))
    migrate(second)
    return second


def test_add_instance_gives_the_node_outputs_the_next_version(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        first = add_instance(session, header("9.1"), receipt("a", 0, False))
        second = add_instance(session, header("9.1"), receipt("a", 1, False))
    assert (first.version, second.version) == (1, 2)
    assert second.id > first.id
    engine.dispose()


def test_a_race_for_the_same_new_instance_on_postgresql_is_a_duplicate(
    tmp_path: Path, postgres_url: str
) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    sessions: sessionmaker[Session] = session_factory(engine)
    store = FileStore(tmp_path / "data")
    ingestor = Ingestor(store, sessions, create_metrics())
    one_header, one_receipt = header("3.1"), receipt("r", 0)
    staged = Staged(tmp_path / "x.part", tmp_path / "x.dcm", one_header, one_receipt)

    first = sessions()
    first.begin()
    assert not index_instance(first, one_header, one_receipt).duplicate  # not committed yet
    results: list[Any] = []
    racer = threading.Thread(target=lambda: results.append(ingestor._index(staged)))
    racer.start()
    _wait_for_lock_wait(engine)  # the racer's insert waits on the first's unique key
    first.commit()
    first.close()
    racer.join(30)
    (result,) = results
    assert result.outcome == "duplicate" and result.version == 1

    # Other bytes racing the same way become the next version, not a failure.
    other = replace(one_receipt, sha256="s" * 64, path="instances/x/s.dcm")
    second = sessions()
    second.begin()
    assert index_instance(second, one_header, replace(other, sha256="t" * 64)).version == 2
    racer = threading.Thread(
        target=lambda: results.append(
            ingestor._index(Staged(staged.temp, staged.target, one_header, other))
        )
    )
    racer.start()
    _wait_for_lock_wait(engine)
    second.commit()
    second.close()
    racer.join(30)
    assert results[1].outcome == "stored" and results[1].version == 3
    engine.dispose()


def _wait_for_lock_wait(engine: Engine) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the racing insert never waited on the lock")
