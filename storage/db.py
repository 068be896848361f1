"""Engine and sessions: SQLite in WAL mode by default, PostgreSQL by URL; Alembic at start."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Long enough to ride out another process's commit (fsync included) under load.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
    # pysqlite's own transaction handling is turned off so that every transaction starts with
    # BEGIN IMMEDIATE: writers queue on the busy timeout instead of failing with "database is
    # locked" when two readers try to upgrade at once.
    engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns; the node acknowledges only after it.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("storage").joinpath("migrations"))
    )
    return config


@dataclass(frozen=True)
class SchemaState:
    current: frozenset[str]  # the revisions the database is at
    heads: frozenset[str]  # the newest revisions this code has
    unknown: frozenset[str]  # revisions of the database this code has never heard of


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema stands against the code's migrations; changes nothing."""
    scripts = ScriptDirectory.from_config(_alembic_config())
    with engine.connect() as connection:
        current = frozenset(MigrationContext.configure(connection).get_current_heads())
    known = {revision.revision for revision in scripts.walk_revisions()}
    return SchemaState(current, frozenset(scripts.get_heads()), current - known)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run once at start, before serving)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        # "heads": later features add their tables as branches from the first revision.
        command.upgrade(config, "heads")
