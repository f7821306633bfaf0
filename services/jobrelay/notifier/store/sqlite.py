"""The delivery state in SQLite (WAL, synchronous=FULL): embedded, durable across kill -9 and power loss.

One process owns the file; it is the only writer, so deliveries need no claims (the PostgreSQL
adapter, shared by several replicas, claims them with a lease).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from jobrelay.notifier.store import Completion, Delivery, DeliveryState, NewDelivery, Partition

__all__ = ["SqliteDeliveryStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    event_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, job_type TEXT NOT NULL, body BLOB NOT NULL,
    source_topic TEXT NOT NULL, source_partition INTEGER NOT NULL, source_offset INTEGER NOT NULL,
    record_key BLOB, record_value BLOB NOT NULL, record_headers TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL REFERENCES completions (event_id),
    url TEXT NOT NULL, host TEXT NOT NULL, subscription TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT,
    dead_letter_pending INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    UNIQUE (event_id, url));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_dlq ON deliveries (id) WHERE dead_letter_pending = 1;
CREATE TABLE IF NOT EXISTS disabled_urls (
    url TEXT PRIMARY KEY, last_status INTEGER NOT NULL, reason TEXT NOT NULL, disabled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS consumed_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition));
"""

_COLUMNS = """
SELECT d.id, d.url, d.host, d.subscription, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
       c.event_id, c.job_id, c.job_type, c.body, c.source_topic, c.source_partition, c.source_offset,
       c.record_key, c.record_value, c.record_headers
"""
_SELECT = f"{_COLUMNS} FROM deliveries d JOIN completions c USING (event_id)"
# Each host's oldest due deliveries only, so one saturated host cannot fill the whole window.
_DUE = f"""{_COLUMNS} FROM (
    SELECT *, row_number() OVER (PARTITION BY host ORDER BY next_attempt_at, id) AS host_rank
    FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?) d
JOIN completions c USING (event_id) WHERE d.host_rank <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?"""  # noqa: S608


def _headers_json(headers: Sequence[tuple[str, bytes | None]]) -> str:
    # Header values are arbitrary bytes: base64 keeps them exact for the dead letter.
    return json.dumps([[k, None if v is None else base64.b64encode(v).decode()] for k, v in headers])


def _headers_from(text: str) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((k, None if v is None else base64.b64decode(v)) for k, v in json.loads(text))


def _delivery(row: Sequence[Any]) -> Delivery:
    event_id, job_id, job_type, body, topic, partition, offset, key, value, headers = row[9:19]
    completion = Completion(
        event_id, job_id, job_type, body, topic, partition, offset, key, value, _headers_from(headers)
    )
    delivery_id, url, host, subscription, state, attempts, next_at, status, error = row[0:9]
    return Delivery(
        delivery_id, url, host, subscription, DeliveryState(state), attempts, next_at, status, error, completion
    )


class SqliteDeliveryStore:
    """`DeliveryStore` on one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path | str) -> SqliteDeliveryStore:
        """Open (creating if needed) the database at `path`."""
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")  # rows are the only record once the offset is committed
        await db.execute("PRAGMA foreign_keys=ON")
        await db.executescript(_SCHEMA)
        await db.commit()
        return cls(db)

    async def close(self) -> None:
        """Close the connection."""
        await self.db.close()

    async def record(
        self, batch: Sequence[tuple[Completion, Sequence[NewDelivery]]], offsets: Mapping[Partition, int], now: float
    ) -> int:
        """Store completions, deliveries and next offsets in one transaction; return how many deliveries are new."""
        new = 0
        for completion, deliveries in batch:
            new += await self._insert(completion, deliveries, now)
        await self.db.executemany(
            "INSERT INTO consumed_offsets VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET "
            "next_offset = max(next_offset, excluded.next_offset)",
            [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
        )
        await self.db.commit()
        return new

    async def _insert(self, c: Completion, deliveries: Sequence[NewDelivery], now: float) -> int:
        await self.db.execute(
            "INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                c.event_id,
                c.job_id,
                c.job_type,
                c.body,
                c.topic,
                c.partition,
                c.offset,
                c.key,
                c.value,
                _headers_json(c.headers),
                now,
            ),
        )
        cursor = await self.db.executemany(
            "INSERT INTO deliveries (event_id, url, host, subscription, state, next_attempt_at, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING",
            [(c.event_id, d.url, d.host, d.subscription, now, now, now) for d in deliveries],
        )
        return max(cursor.rowcount, 0)  # summed over the rows; a duplicate counts 0

    async def offsets(self) -> dict[Partition, int]:
        """The next offset to consume per partition."""
        async with self.db.execute("SELECT topic, partition, next_offset FROM consumed_offsets") as cursor:
            return {(topic, partition): offset async for topic, partition, offset in cursor}

    async def due(self, now: float, limit: int, per_host: int) -> list[Delivery]:
        """Pending deliveries due at `now`, oldest first, at most `per_host` per host."""
        async with self.db.execute(_DUE, (now, per_host, limit)) as cursor:
            return [_delivery(row) async for row in cursor]

    async def next_due_at(self, after: float) -> float | None:
        """When the earliest pending delivery due after `after` is due."""
        query = "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > ?"
        async with self.db.execute(query, (after,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def retry_later(self, delivery_id: int, *, attempts: int, at: float, status: int | None, error: str) -> None:
        """Record a failed attempt and the next one's time."""
        await self.db.execute(
            "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?, "
            "updated_at = ? WHERE id = ?",
            (attempts, at, status, error, time.time(), delivery_id),
        )
        await self.db.commit()

    async def finish(
        self, delivery_id: int, state: DeliveryState, *, attempts: int, status: int | None, error: str | None
    ) -> None:
        """Record a final state; a failure is queued for job-dlq in the same write."""
        await self.db.execute(
            "UPDATE deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?, dead_letter_pending = ?, "
            "updated_at = ? WHERE id = ?",
            (state.value, attempts, status, error, int(state is not DeliveryState.DELIVERED), time.time(), delivery_id),
        )
        await self.db.commit()

    async def disable_url(self, url: str, status: int, reason: str, now: float) -> None:
        """Remember that `url` must not be called again."""
        await self.db.execute(
            "INSERT INTO disabled_urls VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (url, status, reason, now)
        )
        await self.db.commit()

    async def disabled(self, url: str) -> str | None:
        """Why `url` is disabled, if it is."""
        async with self.db.execute("SELECT reason FROM disabled_urls WHERE url = ?", (url,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def enable_url(self, url: str) -> bool:
        """Forget that `url` answered 410."""
        cursor = await self.db.execute("DELETE FROM disabled_urls WHERE url = ?", (url,))
        await self.db.commit()
        return cursor.rowcount > 0

    async def deliveries_of(self, job_id: str) -> list[Delivery]:
        """Every delivery of `job_id`, oldest first."""
        async with self.db.execute(f"{_SELECT} WHERE c.job_id = ? ORDER BY d.id", (job_id,)) as cursor:
            return [_delivery(row) async for row in cursor]

    async def release(self, delivery_ids: Collection[int]) -> None:
        """Nothing to hand back: one process owns the file, so nothing is claimed."""

    async def dead_letters_pending(self, limit: int) -> list[Delivery]:
        """Final failures not yet on job-dlq."""
        async with self.db.execute(f"{_SELECT} WHERE d.dead_letter_pending = 1 ORDER BY d.id LIMIT ?", (limit,)) as c:
            return [_delivery(row) async for row in c]

    async def dead_lettered(self, delivery_id: int) -> None:
        """The dead letter of `delivery_id` is on job-dlq."""
        await self.db.execute("UPDATE deliveries SET dead_letter_pending = 0 WHERE id = ?", (delivery_id,))
        await self.db.commit()

    async def counts(self) -> dict[DeliveryState, int]:
        """Deliveries per state."""
        async with self.db.execute("SELECT state, count(*) FROM deliveries GROUP BY state") as cursor:
            return {DeliveryState(state): count async for state, count in cursor}
