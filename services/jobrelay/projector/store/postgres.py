"""The PostgreSQL view store (asyncpg): the view on a server, beside the embedded SQLite default.

The rows are the SQLite store's: each job's folded state as JSON text (`rows.to_json`) plus the
columns the list filters and orders by (`sqlite_sql.params`). Timestamps are `rows.iso` text and
the ordered columns use the "C" collation, so their order is the byte order `base.sort_key` and
the cursors use, whatever the database's locale; the list query is the SQLite one
(`sqlite_sql.query_sql`) with numbered placeholders, so both answer alike. Ids and types pass
through `to_text`: PostgreSQL text cannot hold the NUL a producer may send. A batch is one
statement per table (arrays through `unnest`), and every write is one transaction: rows and
positions together or neither. `update` locks the stored rows it folds (`FOR UPDATE`), so two
writers never fold the same job at once. The schema is versioned (`jobrelay.storage.postgres`,
component "projector").
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from jobrelay.projector.store import sqlite_sql
from jobrelay.projector.store.base import ChangeClock, Fold, JobQuery, Loaded, Position
from jobrelay.projector.store.rows import JobRow, iso, parse_iso
from jobrelay.storage.postgres import Migration, from_text, open_pool, to_text

__all__ = ["MIGRATIONS", "PostgresStore"]

INLINE_JOBS = 256  # a fold of more jobs runs in a thread, so the event loop keeps serving reads

MIGRATIONS = (
    Migration(
        1,
        "jobs, positions and tombstones",
        """
CREATE TABLE jobs (
  id TEXT COLLATE "C" PRIMARY KEY, type TEXT, status TEXT NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL, updated_at TEXT COLLATE "C" NOT NULL,
  activity_at TEXT COLLATE "C", finished_at TEXT COLLATE "C",
  version BIGINT NOT NULL, applied BIGINT NOT NULL, state TEXT NOT NULL
);
CREATE INDEX jobs_by_created ON jobs (created_at, id);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE positions (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition)
);
CREATE TABLE tombstones (id TEXT COLLATE "C" PRIMARY KEY, purged_at TEXT NOT NULL);
""",
    ),
    Migration(
        2,
        "the tenant of each job, for the list's tenant filter",
        """
ALTER TABLE jobs ADD COLUMN tenant TEXT COLLATE "C";
CREATE INDEX jobs_by_tenant ON jobs (tenant, created_at, id);
""",
    ),
    Migration(
        3,
        "each job's latest change number, for the many-job streams",
        """
ALTER TABLE jobs ADD COLUMN changed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_change ON jobs (changed);
CREATE INDEX jobs_by_tenant_change ON jobs (tenant, changed);
""",
    ),
)

_UPSERT = """
INSERT INTO jobs (id, type, status, created_at, updated_at, activity_at, finished_at, version, applied, state, tenant,
  changed)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::bigint[])
ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, created_at = excluded.created_at,
  updated_at = excluded.updated_at, activity_at = excluded.activity_at, finished_at = excluded.finished_at,
  changed = CASE WHEN excluded.version = jobs.version THEN jobs.changed ELSE excluded.changed END,
  version = excluded.version, applied = excluded.applied, state = excluded.state, tenant = excluded.tenant
"""
_POSITIONS = """
INSERT INTO positions (topic, partition, next_offset)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[])
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
"""
_LOAD = "SELECT version, applied, state FROM jobs WHERE id = ANY($1::text[])"
_HEAD = "SELECT coalesce(max(changed), 0) FROM jobs"
_PURGE = """
WITH gone AS (DELETE FROM jobs WHERE finished_at < $1 RETURNING id)
INSERT INTO tombstones (id, purged_at) SELECT id, $2 FROM gone
ON CONFLICT (id) DO UPDATE SET purged_at = excluded.purged_at
RETURNING id
"""


def _numbered(text: str) -> str:
    """SQLite's `?` placeholders as PostgreSQL's `$1, $2, …` (the query builder writes no literal `?`)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", text)


def _params(row: JobRow) -> tuple[Any, ...]:
    job_id, job_type, *rest, tenant = sqlite_sql.params(row)  # the state's JSON escapes NUL itself
    return (to_text(job_id), None if job_type is None else to_text(job_type), *rest, _text(tenant))


def _text(value: str | None) -> str | None:
    return None if value is None else to_text(value)


def _columns(rows: Sequence[JobRow], clock: ChangeClock) -> list[list[Any]]:
    """The rows' column values, one list per column (for `unnest`); a row that cannot be stored raises.

    `clock` numbers the changes (the twelfth column).
    """
    latest = {row.job_id: _params(row) for row in rows}  # one row per job: the last, as SQLite keeps
    if not latest:
        return [[] for _ in range(12)]  # the twelve columns, empty
    first = clock.take(len(latest))
    numbered = [(*values, first + n) for n, values in enumerate(latest.values())]
    return [list(column) for column in zip(*numbered, strict=True)]


async def _load(connection: asyncpg.Connection, job_ids: Collection[str], *, lock: bool = False) -> Loaded:
    ids = sorted({to_text(i) for i in job_ids})  # in key order: two writers lock the same rows in the same order
    query = _LOAD + (" ORDER BY id FOR UPDATE" if lock else "")
    rows = {row.job_id: row for row in map(sqlite_sql.row_of, await connection.fetch(query, ids))}
    purged = await connection.fetch("SELECT id FROM tombstones WHERE id = ANY($1::text[])", ids)
    return Loaded(rows, frozenset(from_text(record[0]) for record in purged))


async def _write(connection: asyncpg.Connection, columns: list[list[Any]], at: Mapping[Position, int]) -> None:
    if columns[0]:
        await connection.execute(_UPSERT, *columns)
    if at:
        topics, partitions, offsets = zip(*((t, p, o) for (t, p), o in at.items()), strict=True)
        await connection.execute(_POSITIONS, list(topics), list(partitions), list(offsets))


class PostgresStore:
    """A ViewStore in a PostgreSQL database (or a schema of one, by the DSN's `search_path`)."""

    def __init__(self, pool: asyncpg.Pool, last_change: int = 0) -> None:
        self._pool = pool
        # Numbers from this process's clock: in change order for one writer; with several writers
        # (replicas) only as ordered as their clocks.
        self._clock = ChangeClock(last_change)

    @classmethod
    async def open(cls, dsn: str) -> PostgresStore:
        """Connect to `dsn` and bring the view's schema to the newest version."""
        pool = await open_pool(dsn, "projector", MIGRATIONS)
        return cls(pool, await pool.fetchval(_HEAD))

    async def positions(self) -> dict[Position, int]:
        """The next offset to read per (topic, partition)."""
        records = await self._pool.fetch("SELECT topic, partition, next_offset FROM positions")
        return {(topic, partition): offset for topic, partition, offset in records}

    async def load(self, job_ids: Collection[str]) -> Loaded:
        """Stored rows of `job_ids` and the purged among them."""
        async with self._pool.acquire() as connection:
            return await _load(connection, job_ids)

    async def write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        """Store rows and positions in one transaction."""
        columns = _columns(rows, self._clock)  # before the transaction: a row that cannot be stored stores nothing
        async with self._pool.acquire() as connection, connection.transaction():
            await _write(connection, columns, positions)

    async def update(self, job_ids: Collection[str], fold: Fold, positions: Mapping[Position, int]) -> list[JobRow]:
        """Load (locking), fold and store with the positions, in one transaction."""
        async with self._pool.acquire() as connection, connection.transaction():
            loaded = await _load(connection, job_ids, lock=True)
            small = len(job_ids) <= INLINE_JOBS
            rows = list(fold(loaded) if small else await asyncio.to_thread(fold, loaded))
            await _write(connection, _columns(rows, self._clock), positions)
        return rows

    async def get(self, job_id: str) -> JobRow | None:
        """One job or None."""
        record = await self._pool.fetchrow("SELECT version, applied, state FROM jobs WHERE id = $1", to_text(job_id))
        return sqlite_sql.row_of(record) if record is not None else None

    async def purged_at(self, job_id: str) -> datetime | None:
        """When `job_id` was purged."""
        text = await self._pool.fetchval("SELECT purged_at FROM tombstones WHERE id = $1", to_text(job_id))
        return parse_iso(text) if text is not None else None

    async def head(self) -> int:
        """The latest change number."""
        return int(await self._pool.fetchval(_HEAD))

    async def changes(
        self, after: int, *, job_ids: Collection[str] | None = None, tenant: str | None = None, limit: int = 500
    ) -> list[JobRow]:
        """Jobs changed after `after`, in change order."""
        text, args = sqlite_sql.changes_sql(after, job_ids, tenant, limit)
        args = [to_text(arg) if isinstance(arg, str) else arg for arg in args]
        return [sqlite_sql.changed_row_of(record) for record in await self._pool.fetch(_numbered(text), *args)]

    async def query(self, query: JobQuery) -> list[JobRow]:
        """Matching jobs, newest first."""
        text, args = sqlite_sql.query_sql(query)
        args = [to_text(arg) if isinstance(arg, str) else arg for arg in args]  # types and the cursor's id
        return [sqlite_sql.row_of(record) for record in await self._pool.fetch(_numbered(text), *args)]

    async def purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        """Drop jobs that finished before `terminal_before`, leaving tombstones (one statement)."""
        records = await self._pool.fetch(_PURGE, iso(terminal_before), iso(now))
        return sorted(from_text(record[0]) for record in records)

    async def all_rows(self) -> list[JobRow]:
        """Every job by id."""
        records = await self._pool.fetch("SELECT version, applied, state FROM jobs ORDER BY id")
        return [sqlite_sql.row_of(record) for record in records]

    async def close(self) -> None:
        """Close the pool's connections (after the calls under way)."""
        await self._pool.close()
