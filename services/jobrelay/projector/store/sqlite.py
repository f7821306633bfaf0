"""The SQLite view store (embedded default): WAL, a writer connection and a reader connection.

Each connection has one thread of its own, and every call is one hop to it: a batch's load,
fold, upserts, positions and commit run as one function in the writer's thread, inside one
`BEGIN IMMEDIATE … COMMIT` (not one hop per statement, which cost a quarter of the projector's
CPU with aiosqlite); a small batch runs the same function on the event loop, without a hop.
Readers use their own connection and, thanks to WAL, see the last committed batch without
waiting for the writer.

The writer keeps the rows it last wrote in a bounded cache: it is the file's only writer, so a
cached row is the stored row, and a batch about jobs it just wrote skips reading and decoding them.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from jobrelay.projector.store import sqlite_sql as sql
from jobrelay.projector.store.base import ChangeClock, Fold, JobQuery, Loaded, Position
from jobrelay.projector.store.rows import JobRow, parse_iso

__all__ = ["SqliteStore"]

_T = TypeVar("_T")
CACHED_ROWS = 20_000  # a few MB; about a minute of jobs at a few hundred jobs/s
INLINE_JOBS = 32  # a batch this small is written on the event loop: the hop would cost more than the work


class SqliteStore:
    """A ViewStore in one SQLite file."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self.path, self._writer, self._reader = path, writer, reader
        self._writing = ThreadPoolExecutor(1, thread_name_prefix="view-writer")
        self._reading = ThreadPoolExecutor(1, thread_name_prefix="view-reader")
        self._cache: OrderedDict[str, JobRow] = OrderedDict()  # touched only under the lock
        self._lock = asyncio.Lock()  # one user of the writer connection at a time, in the loop or its thread
        self._clock = ChangeClock(sql.head(writer))  # the file's only writer numbers its changes

    @classmethod
    async def open(cls, path: Path, *, bulk: bool = False) -> SqliteStore:
        """Open (creating if needed) the store at `path`; `bulk` for a file nobody reads yet (a rebuild's)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await asyncio.to_thread(sql.connect, path, writer=True)
        if bulk:
            # Nothing to lose in a crash (the file is not swapped in); checkpoint() syncs it at the end.
            writer.execute("PRAGMA synchronous = OFF")
            writer.execute(f"PRAGMA cache_size = -{256 * 1024}")  # KiB: keep the B-trees being filled in memory
        return cls(path, writer, await asyncio.to_thread(sql.connect, path, writer=False))

    async def _in(self, pool: ThreadPoolExecutor, call: Callable[[], _T]) -> _T:
        # The caller's context goes along: the fold's spans and log fields belong to the batch.
        return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, call)

    async def positions(self) -> dict[Position, int]:
        """The next offset to read per (topic, partition)."""
        return await self._in(self._reading, lambda: sql.positions(self._reader))

    async def _writer_does(self, call: Callable[[], _T], *, inline: bool = False) -> _T:
        async with self._lock:
            return call() if inline else await self._in(self._writing, call)

    async def load(self, job_ids: Collection[str]) -> Loaded:
        """Stored rows of `job_ids` and the purged among them (read by the writer: it is the only one)."""
        return await self._writer_does(lambda: self._load(job_ids))

    async def write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        """Store rows and positions in one transaction."""
        await self._writer_does(lambda: self._write(rows, positions))

    async def update(self, job_ids: Collection[str], fold: Fold, positions: Mapping[Position, int]) -> list[JobRow]:
        """Load, fold and store with the positions: one transaction, at most one hop to the writer's thread.

        A small batch (the live feed at a light load) runs on the event loop: a commit in WAL mode
        without fsync takes less than the two thread switches of a hop, which were a fifth of the
        projector's CPU at 200 jobs/s.
        """
        call = lambda: self.update_now(job_ids, fold, positions)  # noqa: E731
        return await self._writer_does(call, inline=len(job_ids) <= INLINE_JOBS)

    def update_now(
        self,
        job_ids: Collection[str],
        fold: Fold,
        positions: Mapping[Position, int],
        encoded: Sequence[tuple[Any, ...]] = (),
    ) -> list[JobRow]:
        """`update` in the calling thread, for a store nothing else uses meanwhile (a rebuild's generation).

        `encoded`: more rows, already in `sql.params` form (encoded by a rebuild's workers), of other jobs.
        """
        with sql.transaction(self._writer):  # the load belongs to the transaction it is written back in
            rows = list(fold(self._load(job_ids)))
            sql.write(self._writer, [*encoded, *(sql.params(row) for row in rows)], positions, self._clock)
        self._remember(rows)
        return rows

    def _load(self, job_ids: Collection[str]) -> Loaded:
        cached = {i: row for i in job_ids if (row := self._cache.get(i)) is not None}
        if len(cached) == len(job_ids):
            return Loaded(cached, frozenset())  # purge evicts what it drops: a cached job is not purged
        stored = sql.load(self._writer, [i for i in job_ids if i not in cached])
        return Loaded(cached | stored.rows, stored.purged)

    def _write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        encoded = [sql.params(row) for row in rows]  # before BEGIN: a row that cannot be stored stores nothing
        with sql.transaction(self._writer):
            sql.write(self._writer, encoded, positions, self._clock)
        self._remember(rows)

    def _remember(self, rows: Sequence[JobRow]) -> None:
        cache = self._cache
        for row in rows:
            cache[row.job_id] = row
            cache.move_to_end(row.job_id)
        while len(cache) > CACHED_ROWS:
            cache.popitem(last=False)

    async def get(self, job_id: str) -> JobRow | None:
        """One job or None."""
        query = "SELECT version, applied, state FROM jobs WHERE id = ?"
        record = await self._in(self._reading, lambda: self._reader.execute(query, (job_id,)).fetchone())
        return sql.row_of(record) if record is not None else None

    async def purged_at(self, job_id: str) -> datetime | None:
        """When `job_id` was purged."""
        query = "SELECT purged_at FROM tombstones WHERE id = ?"
        record = await self._in(self._reading, lambda: self._reader.execute(query, (job_id,)).fetchone())
        return parse_iso(record[0]) if record is not None else None

    async def head(self) -> int:
        """The latest change number."""
        return await self._in(self._reading, lambda: sql.head(self._reader))

    async def changes(
        self, after: int, *, job_ids: Collection[str] | None = None, tenant: str | None = None, limit: int = 500
    ) -> list[JobRow]:
        """Jobs changed after `after`, in change order."""
        text, args = sql.changes_sql(after, job_ids, tenant, limit)
        return await self._in(self._reading, lambda: [sql.changed_row_of(r) for r in self._reader.execute(text, args)])

    async def query(self, query: JobQuery) -> list[JobRow]:
        """Matching jobs, newest first."""
        text, args = sql.query_sql(query)
        return await self._in(self._reading, lambda: [sql.row_of(r) for r in self._reader.execute(text, args)])

    async def purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        """Drop jobs that finished before `terminal_before`, leaving tombstones."""
        return await self._writer_does(lambda: self._purge(terminal_before, now))

    def _purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        gone = sql.purge(self._writer, terminal_before, now)
        for job_id in gone:
            self._cache.pop(job_id, None)
        return gone

    async def all_rows(self) -> list[JobRow]:
        """Every job by id."""
        query = "SELECT version, applied, state FROM jobs ORDER BY id"
        return await self._in(self._reading, lambda: [sql.row_of(r) for r in self._reader.execute(query)])

    async def checkpoint(self) -> None:
        """Fold the WAL into the database file (before the file is handed over, e.g. by a rebuild)."""
        await self._writer_does(self._checkpoint)

    def _checkpoint(self) -> None:
        self._writer.execute("PRAGMA synchronous = NORMAL")  # so the checkpoint syncs the file (after bulk)
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        """Close both connections (after what is under way in their threads)."""
        await self._in(self._reading, self._reader.close)
        await self._writer_does(self._writer.close)
        self._reading.shutdown()
        self._writing.shutdown()
