"""The SQLite view store (embedded default): WAL, one writer connection, one reader connection.

Writes go through one connection under a lock, each batch in one `BEGIN IMMEDIATE … COMMIT`
with the positions it came from; readers use their own connection and, thanks to WAL, see the
last committed batch without waiting for the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from jobrelay.jobs.state import JobStatus
from jobrelay.projector.store.base import JobQuery, Loaded, Position
from jobrelay.projector.store.rows import JobRow, from_json, iso, parse_iso, to_json

__all__ = ["SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, type TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  activity_at TEXT, finished_at TEXT, version INTEGER NOT NULL, applied INTEGER NOT NULL,
  state TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS positions (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, purged_at TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO jobs (id, type, status, created_at, updated_at, activity_at, finished_at, version, applied, state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, created_at = excluded.created_at,
  updated_at = excluded.updated_at, activity_at = excluded.activity_at, finished_at = excluded.finished_at,
  version = excluded.version, applied = excluded.applied, state = excluded.state
"""
_POSITION = """
INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
"""
_CHUNK = 500  # ids per IN (…) query, well under SQLite's variable limit


def _chunks(ids: Collection[str]) -> Iterator[list[str]]:
    items = list(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _params(row: JobRow) -> tuple[Any, ...]:
    state = row.state
    created, last = state.created_at, state.last_at
    if created is None or last is None:
        raise ValueError(f"job {state.job_id} has no event yet and cannot be stored")
    activity = iso(state.activity_at) if state.activity_at is not None else None
    finished = iso(state.outcome.at) if state.outcome is not None else None
    return (
        state.job_id,
        state.job_type,
        state.status.value,
        iso(created),
        iso(last),
        activity,
        finished,
        row.version,
        row.applied,
        to_json(state),
    )


def _row(record: Any) -> JobRow:
    version, applied, state = record
    return JobRow(from_json(state), version, applied)


class SqliteStore:
    """A ViewStore in one SQLite file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path, self._writer, self._reader = path, writer, reader
        self._lock = asyncio.Lock()  # one write transaction at a time on the writer connection

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating if needed) the store at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        await writer.execute("PRAGMA journal_mode = WAL")
        await writer.executescript(_SCHEMA)
        return cls(path, writer, await _connect(path))

    async def positions(self) -> dict[Position, int]:
        """The next offset to read per (topic, partition)."""
        async with self._reader.execute("SELECT topic, partition, next_offset FROM positions") as cursor:
            return {(topic, partition): offset async for topic, partition, offset in cursor}

    async def load(self, job_ids: Collection[str]) -> Loaded:
        """Stored rows of `job_ids` and the purged among them (read by the writer: it is the only one)."""
        rows: dict[str, JobRow] = {}
        purged: set[str] = set()
        for chunk in _chunks(job_ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT version, applied, state FROM jobs WHERE id IN ({marks})"  # noqa: S608 (placeholders only)
            async with self._writer.execute(sql, chunk) as cursor:
                rows.update((row.job_id, row) for row in map(_row, await cursor.fetchall()))
            sql = f"SELECT id FROM tombstones WHERE id IN ({marks})"  # noqa: S608
            async with self._writer.execute(sql, chunk) as cursor:
                purged.update(record[0] for record in await cursor.fetchall())
        return Loaded(rows, frozenset(purged))

    async def write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        """Store rows and positions in one transaction."""
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                await self._writer.executemany(_UPSERT, [_params(row) for row in rows])
                await self._writer.executemany(_POSITION, [(t, p, o) for (t, p), o in positions.items()])
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def get(self, job_id: str) -> JobRow | None:
        """One job or None."""
        sql = "SELECT version, applied, state FROM jobs WHERE id = ?"
        async with self._reader.execute(sql, (job_id,)) as cursor:
            record = await cursor.fetchone()
        return _row(record) if record is not None else None

    async def purged_at(self, job_id: str) -> datetime | None:
        """When `job_id` was purged."""
        async with self._reader.execute("SELECT purged_at FROM tombstones WHERE id = ?", (job_id,)) as cursor:
            record = await cursor.fetchone()
        return parse_iso(record[0]) if record is not None else None

    async def query(self, query: JobQuery) -> list[JobRow]:
        """Matching jobs, newest first."""
        where, params = _where(query)
        sql = f"SELECT version, applied, state FROM jobs{where} ORDER BY created_at DESC, id DESC LIMIT ?"  # noqa: S608
        async with self._reader.execute(sql, [*params, query.limit]) as cursor:
            return [_row(record) for record in await cursor.fetchall()]

    async def purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        """Drop jobs that finished before `terminal_before`, leaving tombstones."""
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                sql = "SELECT id FROM jobs WHERE finished_at < ? ORDER BY id"
                async with self._writer.execute(sql, (iso(terminal_before),)) as cursor:
                    gone = [record[0] for record in await cursor.fetchall()]
                await self._writer.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in gone])
                stamp = iso(now)
                await self._writer.executemany(
                    "INSERT OR REPLACE INTO tombstones (id, purged_at) VALUES (?, ?)", [(i, stamp) for i in gone]
                )
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
        return gone

    async def all_rows(self) -> list[JobRow]:
        """Every job by id."""
        async with self._reader.execute("SELECT version, applied, state FROM jobs ORDER BY id") as cursor:
            return [_row(record) for record in await cursor.fetchall()]

    async def checkpoint(self) -> None:
        """Fold the WAL into the database file (before the file is handed over, e.g. by a rebuild)."""
        await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        """Close both connections."""
        await self._reader.close()
        await self._writer.close()


async def _connect(path: Path) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    await connection.execute("PRAGMA busy_timeout = 5000")
    await connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives a process crash
    return connection


def _where(query: JobQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.statuses:
        ors, status_params = _status_clauses(query)
        clauses.append(f"({' OR '.join(ors)})")
        params += status_params
    if query.types:
        clauses.append(f"type IN ({','.join('?' * len(query.types))})")
        params += sorted(query.types)
    if query.created_after is not None:
        clauses.append("created_at >= ?")
        params.append(iso(query.created_after))
    if query.created_before is not None:
        clauses.append("created_at < ?")
        params.append(iso(query.created_before))
    if query.after is not None:
        clauses.append("(created_at, id) < (?, ?)")
        params += [iso(query.after.created_at), query.after.job_id]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _status_clauses(query: JobQuery) -> tuple[list[str], list[Any]]:
    """STALLED and RUNNING share the stored status RUNNING; the last sign of life tells them apart."""
    cutoff = iso(query.now - query.stall_after)
    ors: list[str] = []
    params: list[Any] = []
    for status in sorted(query.statuses):
        if status is JobStatus.RUNNING:
            ors.append("(status = 'RUNNING' AND activity_at >= ?)")
            params.append(cutoff)
        elif status is JobStatus.STALLED:
            ors.append("(status = 'RUNNING' AND activity_at < ?)")
            params.append(cutoff)
        else:
            ors.append("status = ?")
            params.append(status.value)
    return ors, params
