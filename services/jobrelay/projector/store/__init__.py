"""View stores: the contract (`base`), in memory, SQLite (PostgreSQL in a later issue)."""

from jobrelay.projector.store.base import Cursor, JobQuery, Loaded, Position, ViewStore
from jobrelay.projector.store.memory import MemoryStore
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = ["Cursor", "JobQuery", "JobRow", "Loaded", "MemoryStore", "Position", "SqliteStore", "ViewStore"]
