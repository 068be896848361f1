"""Opening the node's durable parts: data directory, database (migrated) and file store."""

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
from storage.db import make_engine, migrate, session_factory
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
