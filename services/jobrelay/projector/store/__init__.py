"""View stores: the contract (`base`), in memory, SQLite (the embedded default) and PostgreSQL."""

from jobrelay.projector.store.base import Cursor, JobQuery, Loaded, Position, ViewStore
from jobrelay.projector.store.memory import MemoryStore
from jobrelay.projector.store.postgres import PostgresStore
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = [
    "Cursor",
    "JobQuery",
    "JobRow",
    "Loaded",
    "MemoryStore",
    "Position",
    "PostgresStore",
    "SqliteStore",
    "ViewStore",
]
