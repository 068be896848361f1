"""Engine and sessions: SQLite in WAL mode by default, PostgreSQL by URL; Alembic at start;
the one ``INSERT … ON CONFLICT`` both engines share."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Result, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

# Long enough to ride out another process's commit (fsync included) under load.
SQLITE_BUSY_TIMEOUT_MS = 30_000


# The database holds patient names and IDs: readable by the node's group, never by others.
# SQLite gives its -wal and -shm files the database file's mode.
DATABASE_FILE_MODE = 0o640
# PostgreSQL's SQLSTATE for "disk full" (Appendix A, class 53 insufficient resources).
_PG_DISK_FULL = "53100"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def database_full(exc: BaseException) -> bool:
    """Whether a database error means its disk is full (SQLite or PostgreSQL)."""
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(original, "sqlstate", None) == _PG_DISK_FULL


def _create_private(path: Path) -> None:
    """Create an empty database file 0640 unless there is one; tighten an existing one that
    others could read. SQLite would otherwise create it under the process's umask."""
    if str(path) in ("", ":memory:"):
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, DATABASE_FILE_MODE)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & 0o007:
            os.chmod(path, stat.S_IMODE(mode) & ~0o007)
        return
    os.close(fd)
    os.chmod(path, DATABASE_FILE_MODE)  # whatever the umask took away from 0640


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database:
        _create_private(Path(database))
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


def insert_on_conflict(
    session: Session,
    table: Any,  # a Table or a mapped class
    values: Mapping[str, Any],
    *,
    update_on: Sequence[str] = (),
    returning: Any = None,
) -> Result[Any]:
    """``INSERT … ON CONFLICT`` on SQLite and PostgreSQL (SQLAlchemy spells it per dialect).

    Without ``update_on`` the insert is skipped when the row would break a unique constraint
    (DO NOTHING: another process may have won). With the columns of a unique key it replaces
    the other columns of the row that is there (DO UPDATE). ``returning``: the columns the
    result gives (no row when nothing was inserted).
    """
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    if update_on:
        statement = statement.on_conflict_do_update(
            index_elements=list(update_on),
            set_={key: value for key, value in values.items() if key not in update_on},
        )
    else:
        statement = statement.on_conflict_do_nothing()
    if returning is not None:
        statement = statement.returning(returning)
    return session.execute(statement)


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

    @property
    def problem(self) -> str | None:
        """Why this code cannot use the database as it is; None when it is at the heads."""
        current, heads = ", ".join(sorted(self.current)), ", ".join(sorted(self.heads))
        if not self.current:
            return "no schema: `echo-node serve` creates it at start"
        if self.unknown:
            return (
                f"at revision {current}, which this echo-node does not know (a newer version "
                "migrated it)"
            )
        if self.current != self.heads:
            return (
                f"at revision {current}, the code's is {heads}: `echo-node serve` migrates at start"
            )
        return None


class NotMigrated(RuntimeError):
    """The database is missing, or its schema is not this code's (read-only openings)."""


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema stands against the code's migrations; changes nothing."""
    scripts = ScriptDirectory.from_config(_alembic_config())
    with engine.connect() as connection:
        current = frozenset(MigrationContext.configure(connection).get_current_heads())
    known = {revision.revision for revision in scripts.walk_revisions()}
    return SchemaState(current, frozenset(scripts.get_heads()), current - known)


def require_current(engine: Engine) -> None:
    """Raise NotMigrated unless the schema is at this code's heads; changes nothing."""
    problem = schema_state(engine).problem
    if problem is not None:
        raise NotMigrated(f"the database is not ready for this echo-node: {problem}")


def make_read_only_engine(url: str) -> Engine:
    """An engine that cannot write: for commands that only read (`status`, `studies`, `jobs`).

    SQLite: the file opened with ``mode=ro`` and ``query_only`` (a missing file is NotMigrated,
    not created); PostgreSQL: every transaction read-only. Nothing is migrated.
    """
    if not url.startswith("sqlite"):
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    database = make_url(url).database or ""
    path = Path(database)
    if database in ("", ":memory:") or not path.is_file():
        raise NotMigrated(f"no database at {database or '(memory)'}: `echo-node serve` creates it")
    location = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(location, uri=True, check_same_thread=False, isolation_level=None)

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction: one snapshot for every query of a command, no write lock.
        connection.exec_driver_sql("BEGIN")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run once at start, before serving)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        # "heads": later features add their tables as branches from the first revision.
        command.upgrade(config, "heads")
