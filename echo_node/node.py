"""Opening the node's durable parts: data directory, database (migrated) and file store; or,
for commands that only read, the same without making, migrating or writing anything."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from echo_node.ingest import Ingestor
from echo_node.settings import Settings
from echo_node.watermark import Watermark
from storage.db import (
    make_engine,
    make_read_only_engine,
    migrate,
    require_current,
    session_factory,
)
from storage.files import FileStore

if TYPE_CHECKING:
    from echo_node.metrics.instruments import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    metrics: Metrics

    @property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.sessions, self.metrics)

    @cached_property
    def watermark(self) -> Watermark:
        """This process's free-space check (one, so its log says once when refusing starts)."""
        return Watermark(self.store.root, self.settings)


def open_node(settings: Settings) -> Node:
    """Prepare the data directory and bring the schema up to date; safe to call repeatedly."""
    store = FileStore(settings.data_dir)
    store.prepare()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    # Imported here, not at the top: see echo_node.metrics (multiprocess mode).
    from echo_node.metrics.instruments import create_metrics

    return Node(settings, engine, session_factory(engine), store, create_metrics())


@dataclass(frozen=True)
class ReadOnlyNode:
    """The durable parts as a command that only reads sees them: nothing here writes."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore


def open_read_only(settings: Settings) -> ReadOnlyNode:
    """Open the database read-only and the file store as it is: no directory made, no
    migration. Raises storage.db.NotMigrated when the database is missing or its schema is
    not this code's (the node has not been started, or with another version)."""
    engine = make_read_only_engine(settings.resolved_database_url)
    try:
        require_current(engine)
    except Exception:
        engine.dispose()
        raise
    return ReadOnlyNode(settings, engine, session_factory(engine), FileStore(settings.data_dir))
