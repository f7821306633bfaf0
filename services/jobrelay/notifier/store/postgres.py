"""The delivery state in PostgreSQL (asyncpg), beside the embedded SQLite default.

The tables are the SQLite store's, in PostgreSQL's types: bodies and record bytes as `bytea`,
the record's headers as two parallel arrays (names, values with NULLs) so every byte comes back
as it went in, times as Unix seconds (`double precision`), text through `to_text` (PostgreSQL
text cannot hold NUL, which a producer can put anywhere). A batch is one transaction: the
completions (pipelined), their deliveries and the offsets (one statement each, arrays through
`unnest`). The schema is versioned (`jobrelay.storage.postgres`, component "notifier").

Several notifier replicas share the state. The recorders split job-completed's partitions by
their consumer group (recording is idempotent either way); the dispatchers **claim** what they
attempt: `due` marks the deliveries it returns with this replica's name and a lease
(`claimed_by`, `claimed_until`) in one transaction, and no replica is handed a delivery under
another's live claim. A retry, a verdict or `release` ends the claim; a replica killed mid-attempt
leaves its claims to run out, and another replica takes them over then (at least once: the
receiver may see that attempt twice, under the same `webhook-id`). Claims are made one replica at
a time (a transaction-scoped advisory lock), so the per-host limit counts every replica's live
claims exactly. Dead letters in the outbox are claimed the same way, so one replica publishes each.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg

from jobrelay.notifier.store import Completion, Delivery, DeliveryState, NewDelivery, Partition
from jobrelay.storage.postgres import Migration, from_text, open_pool, to_text

__all__ = ["MIGRATIONS", "PostgresDeliveryStore"]

MIGRATIONS = (
    Migration(
        1,
        "completions, deliveries, disabled URLs and consumed offsets",
        """
CREATE TABLE completions (
  event_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, job_type TEXT NOT NULL, body BYTEA NOT NULL,
  source_topic TEXT NOT NULL, source_partition INTEGER NOT NULL, source_offset BIGINT NOT NULL,
  record_key BYTEA, record_value BYTEA NOT NULL, header_names TEXT[] NOT NULL, header_values BYTEA[] NOT NULL,
  recorded_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX completions_by_job ON completions (job_id);
CREATE TABLE deliveries (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id TEXT NOT NULL REFERENCES completions (event_id),
  url TEXT NOT NULL, host TEXT NOT NULL, subscription TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at DOUBLE PRECISION NOT NULL, last_status INTEGER, last_error TEXT,
  dead_letter_pending BOOLEAN NOT NULL DEFAULT false,
  created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
  UNIQUE (event_id, url)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_dlq ON deliveries (id) WHERE dead_letter_pending;
CREATE TABLE disabled_urls (
  url TEXT PRIMARY KEY, last_status INTEGER NOT NULL, reason TEXT NOT NULL, disabled_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE consumed_offsets (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition)
);
""",
    ),
    Migration(
        2,
        "claims of deliveries by notifier replicas, with a lease",
        """
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT, ADD COLUMN claimed_until DOUBLE PRECISION;
""",
    ),
)

_COLUMNS = """
SELECT d.id, d.url, d.host, d.subscription, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
       c.event_id, c.job_id, c.job_type, c.body, c.source_topic, c.source_partition, c.source_offset,
       c.record_key, c.record_value, c.header_names, c.header_values
"""
_SELECT = f"{_COLUMNS} FROM deliveries d JOIN completions c USING (event_id)"
# A claim, made while holding _CLAIM_LOCK: the oldest due deliveries no live claim holds, each host's
# share cut by the live claims it already has (every replica's), locked and marked as this replica's.
_CLAIM = """
WITH busy AS (
    SELECT host, count(*) AS n FROM deliveries WHERE state = 'pending' AND claimed_until > $1 GROUP BY host),
ranked AS (
    SELECT d.id, d.next_attempt_at, row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at, d.id) AS rank,
           coalesce(b.n, 0) AS busy
    FROM deliveries d LEFT JOIN busy b USING (host)
    WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND (d.claimed_until IS NULL OR d.claimed_until <= $1)),
picked AS (SELECT id FROM ranked WHERE rank + busy <= $2 ORDER BY next_attempt_at, id LIMIT $3)
UPDATE deliveries d SET claimed_by = $4, claimed_until = $1 + $5 FROM picked WHERE d.id = picked.id RETURNING d.id
"""
_CLAIM_LOCK = 0x6A6F6272656C6179  # pg_advisory_xact_lock key of claims ("jobrelay")
_CLAIM_LETTERS = """
UPDATE deliveries SET claimed_by = $1, claimed_until = $2 + $3
WHERE id IN (SELECT id FROM deliveries
             WHERE dead_letter_pending AND (claimed_until IS NULL OR claimed_until <= $2 OR claimed_by = $1)
             ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING id
"""
# The record's headers as two parallel arrays: a 2-D array could not hold NULL values beside text names.
_COMPLETION = """
INSERT INTO completions (event_id, job_id, job_type, body, source_topic, source_partition, source_offset,
                         record_key, record_value, header_names, header_values, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING
"""
# Deliveries in the order given (ids grow with it); a duplicate (event id, URL) is skipped, not counted.
_DELIVERIES = """
INSERT INTO deliveries (event_id, url, host, subscription, state, next_attempt_at, created_at, updated_at)
SELECT e, u, h, s, 'pending', $5, $5, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS d(e, u, h, s, n) ORDER BY n
ON CONFLICT DO NOTHING RETURNING id
"""
_OFFSETS = """
INSERT INTO consumed_offsets (topic, partition, next_offset)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[])
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = GREATEST(consumed_offsets.next_offset, excluded.next_offset)
"""


def _opt(value: str | None) -> str | None:
    return None if value is None else to_text(value)


def _opt_out(value: str | None) -> str | None:
    return None if value is None else from_text(value)


def _completion_row(c: Completion, now: float) -> tuple[Any, ...]:
    names, values = [to_text(name) for name, _ in c.headers], [value for _, value in c.headers]
    text = to_text
    return (text(c.event_id), text(c.job_id), text(c.job_type), c.body, text(c.topic), c.partition, c.offset, c.key,
            c.value, names, values, now)  # fmt: skip


def _delivery(row: Sequence[Any]) -> Delivery:
    event_id, job_id, job_type, body, topic, partition, offset, key, value, names, values = row[9:20]
    headers = tuple(zip(map(from_text, names), values, strict=True))
    text = from_text
    completion = Completion(
        text(event_id), text(job_id), text(job_type), body, text(topic), partition, offset, key, value, headers
    )
    delivery_id, url, host, subscription, state, attempts, next_at, status, error = row[0:9]
    return Delivery(
        delivery_id, text(url), text(host), _opt_out(subscription), DeliveryState(state), attempts, next_at, status,
        _opt_out(error), completion,
    )  # fmt: skip


class PostgresDeliveryStore:
    """`DeliveryStore` on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, owner: str, lease_s: float) -> None:
        self._pool, self.owner, self.lease_s = pool, owner, lease_s

    @classmethod
    async def open(cls, dsn: str, *, owner: str = "notifier", lease_s: float = 60.0) -> PostgresDeliveryStore:
        """Connect to `dsn` and bring the delivery state's schema to the newest version.

        `owner` names this replica in its claims; `lease_s` is how long a claim lasts.
        """
        return cls(await open_pool(dsn, "notifier", MIGRATIONS), owner=owner, lease_s=lease_s)

    async def close(self) -> None:
        """Hand back this replica's claims (a clean stop: the others need not wait for the lease), then close."""
        try:
            await self._pool.execute(
                "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1", self.owner
            )
        finally:
            await self._pool.close()

    async def record(
        self, batch: Sequence[tuple[Completion, Sequence[NewDelivery]]], offsets: Mapping[Partition, int], now: float
    ) -> int:
        """Store completions, deliveries and next offsets in one transaction; return how many deliveries are new."""
        async with self._pool.acquire() as connection, connection.transaction():
            new = 0
            if batch:
                await connection.executemany(_COMPLETION, [_completion_row(c, now) for c, _ in batch])
                rows = [
                    (to_text(c.event_id), to_text(d.url), to_text(d.host), _opt(d.subscription))
                    for c, deliveries in batch
                    for d in deliveries
                ]
                if rows:
                    new = len(await connection.fetch(_DELIVERIES, *map(list, zip(*rows, strict=True)), now))
            if offsets:
                topics, partitions, nexts = zip(*((t, p, o) for (t, p), o in offsets.items()), strict=True)
                await connection.execute(_OFFSETS, list(topics), list(partitions), list(nexts))
        return new

    async def offsets(self) -> dict[Partition, int]:
        """The next offset to consume per partition."""
        records = await self._pool.fetch("SELECT topic, partition, next_offset FROM consumed_offsets")
        return {(topic, partition): offset for topic, partition, offset in records}

    async def due(self, now: float, limit: int, per_host: int) -> list[Delivery]:
        """Claim pending deliveries due at `now` for this replica, oldest first, at most `per_host` per host in all."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _CLAIM_LOCK)
            claimed = [r[0] for r in await connection.fetch(_CLAIM, now, per_host, limit, self.owner, self.lease_s)]
            if not claimed:
                return []
            rows = await connection.fetch(f"{_SELECT} WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id", claimed)
        return [_delivery(row) for row in rows]

    async def release(self, delivery_ids: Collection[int]) -> None:
        """End this replica's claims of deliveries it did not attempt."""
        if delivery_ids:
            await self._pool.execute(
                "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE id = ANY($1) AND claimed_by = $2",
                list(delivery_ids),
                self.owner,
            )

    async def next_due_at(self, after: float) -> float | None:
        """When the earliest pending delivery due after `after` is due."""
        query = "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > $1"
        value = await self._pool.fetchval(query, after)
        return None if value is None else float(value)

    async def retry_later(self, delivery_id: int, *, attempts: int, at: float, status: int | None, error: str) -> None:
        """Record a failed attempt and the next one's time."""
        await self._pool.execute(
            "UPDATE deliveries SET attempts = $1, next_attempt_at = $2, last_status = $3, last_error = $4, "
            "updated_at = $5, claimed_by = NULL, claimed_until = NULL WHERE id = $6",
            *(attempts, at, status, to_text(error), time.time(), delivery_id),
        )

    async def finish(
        self, delivery_id: int, state: DeliveryState, *, attempts: int, status: int | None, error: str | None
    ) -> None:
        """Record a final state; a failure is queued for job-dlq in the same write."""
        await self._pool.execute(
            "UPDATE deliveries SET state = $1, attempts = $2, last_status = $3, last_error = $4, "
            "dead_letter_pending = $5, updated_at = $6, claimed_by = NULL, claimed_until = NULL WHERE id = $7",
            *(
                state.value,
                attempts,
                status,
                _opt(error),
                state is not DeliveryState.DELIVERED,
                time.time(),
                delivery_id,
            ),
        )

    async def disable_url(self, url: str, status: int, reason: str, now: float) -> None:
        """Remember that `url` must not be called again."""
        await self._pool.execute(
            "INSERT INTO disabled_urls VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            *(to_text(url), status, to_text(reason), now),
        )

    async def disabled(self, url: str) -> str | None:
        """Why `url` is disabled, if it is."""
        reason = await self._pool.fetchval("SELECT reason FROM disabled_urls WHERE url = $1", to_text(url))
        return None if reason is None else from_text(reason)

    async def enable_url(self, url: str) -> bool:
        """Forget that `url` answered 410."""
        query = "DELETE FROM disabled_urls WHERE url = $1 RETURNING url"
        return await self._pool.fetchval(query, to_text(url)) is not None

    async def deliveries_of(self, job_id: str) -> list[Delivery]:
        """Every delivery of `job_id`, oldest first."""
        query = f"{_SELECT} WHERE c.job_id = $1 ORDER BY d.id"
        return [_delivery(row) for row in await self._pool.fetch(query, to_text(job_id))]

    async def dead_letters_pending(self, limit: int) -> list[Delivery]:
        """Final failures not yet on job-dlq, claimed for this replica (so one replica publishes each)."""
        async with self._pool.acquire() as connection, connection.transaction():
            args = (self.owner, time.time(), self.lease_s, limit)
            claimed = [r[0] for r in await connection.fetch(_CLAIM_LETTERS, *args)]
            if not claimed:
                return []
            rows = await connection.fetch(f"{_SELECT} WHERE d.id = ANY($1) ORDER BY d.id", claimed)
        return [_delivery(row) for row in rows]

    async def dead_lettered(self, delivery_id: int) -> None:
        """The dead letter of `delivery_id` is on job-dlq."""
        await self._pool.execute(
            "UPDATE deliveries SET dead_letter_pending = false, claimed_by = NULL, claimed_until = NULL WHERE id = $1",
            delivery_id,
        )

    async def counts(self) -> dict[DeliveryState, int]:
        """Deliveries per state."""
        records = await self._pool.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {DeliveryState(state): int(count) for state, count in records}
