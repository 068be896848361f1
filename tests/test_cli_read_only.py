"""Commands that only read (`status`, `studies`, `jobs`, `jobs show`, `tokens list`) never
create, migrate or write the database: on a node not started yet, or at another schema, they
say so and change nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from echo_node.cli.importer import import_file
from echo_node.node import open_node
from echo_node.settings import load_settings
from storage.db import make_engine
from tests.conftest import us_file

READ_ONLY = (["status"], ["studies"], ["jobs"], ["jobs", "show", "1"], ["tokens", "list"])


def _run(environ: dict[str, str], *args: str) -> Result:
    from echo_node.cli import app

    return CliRunner().invoke(app, list(args), env=environ)


def _digest(data_dir: Path) -> tuple[str, int]:
    """The database file's sha256 and the size of its write-ahead log: a reader of a WAL
    database may create the -wal and -shm files (SQLite's read protocol), never write a frame."""
    wal = data_dir / "echo-node.db-wal"
    database = hashlib.sha256((data_dir / "echo-node.db").read_bytes()).hexdigest()
    return database, wal.stat().st_size if wal.exists() else 0


def test_nothing_is_created_before_the_node_has_started(tmp_path: Path) -> None:
    data = tmp_path / "data"
    environ = {"ECHO_NODE_DATA_DIR": str(data)}
    for command in READ_ONLY:
        result = _run(environ, *command)
        assert result.exit_code == 1, (command, result.output)
        assert "no database at" in result.output and "echo-node serve" in result.output
    assert not data.exists()


def test_reading_writes_nothing_and_an_old_schema_is_not_migrated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    environ = {"ECHO_NODE_DATA_DIR": str(data)}
    node = open_node(load_settings(environ=environ))
    assert import_file(node.ingestor, us_file("examples_ybr_color.dcm")).outcome == "stored"
    node.engine.dispose()

    before = _digest(data)
    status = _run(environ, "status", "--json")
    assert status.exit_code == 0 and '"instances": 1' in status.output
    studies = _run(environ, "studies")
    assert studies.exit_code == 0
    for command in (["jobs"], ["tokens", "list"]):
        assert _run(environ, *command).exit_code == 0
    assert _digest(data) == before

    engine = make_engine(f"sqlite:///{data / 'echo-node.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    before = _digest(data)
    for command in READ_ONLY:
        result = _run(environ, *command)
        assert result.exit_code == 1 and "the database is not ready" in result.output
    assert "echo-node serve` migrates at start" in result.output
    assert _digest(data) == before


@pytest.mark.parametrize("migrated", [False, True])
def test_postgresql_is_read_in_read_only_transactions(
    postgres_url: str, tmp_path: Path, migrated: bool
) -> None:
    environ = {"ECHO_NODE_DATA_DIR": str(tmp_path / "data"), "ECHO_NODE_DATABASE_URL": postgres_url}
    if migrated:
        open_node(load_settings(environ=environ)).engine.dispose()
    result = _run(environ, "status", "--json")
    if migrated:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and "no schema" in result.output
        engine = make_engine(postgres_url)
        with engine.connect() as connection:  # nothing was created
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar()
        engine.dispose()
        assert tables == 0
