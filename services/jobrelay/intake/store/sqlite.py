"""Idempotency-Key memory in SQLite: job id → request hash, kept for a TTL.

A row is written only after Kafka acknowledged the job's record, so the table never names a job
that is not on the topic. It lets the intake answer a retry with the same 202 (without a second
record) and a reused key with a different body with 422.

Limits: each replica has its own file, so a retry that reaches another replica (or arrives after
the TTL) is not recognised here; it is written again under the same job id, and the processor's
dedupe by job id + request hash is the backstop (same hash: ignored; different: dead-lettered).
The worker processes of one replica (`JOBRELAY_INTAKE_WORKERS`) share its file: a retry on
another worker is recognised once the first request was answered; only requests with one key
that run at the same moment on two workers can both write (see `jobrelay.intake.workers`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

__all__ = ["IdempotencyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    job_id       TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
"""
PURGE_EVERY = 1000  # remembers between purges of expired rows


class IdempotencyStore:
    """Remembers which request hash each idempotent job id was accepted with."""

    def __init__(self, db: aiosqlite.Connection, ttl_s: float) -> None:
        self._db, self._ttl = db, ttl_s
        self._writes = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, ttl_s: float) -> AsyncIterator[IdempotencyStore]:
        """Open (creating) the database, purge expired keys, close on exit."""
        async with aiosqlite.connect(path) as db:
            # WAL + NORMAL: a crash of the machine may forget the last keys, never corrupt the
            # file; forgetting only weakens the 422 check, which the processor backs up.
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            store = cls(db, ttl_s)
            await store.purge()
            yield store

    async def lookup(self, job_id: str) -> str | None:
        """The request hash `job_id` was accepted with, unless unknown or expired."""
        cutoff = time.time() - self._ttl
        sql = "SELECT request_hash FROM idempotency_keys WHERE job_id = ? AND created_at > ?"
        async with self._db.execute(sql, (job_id, cutoff)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def remember(self, job_id: str, request_hash: str) -> None:
        """Record an acknowledged job (replacing an expired entry for the same id)."""
        sql = "INSERT OR REPLACE INTO idempotency_keys (job_id, request_hash, created_at) VALUES (?, ?, ?)"
        await self._db.execute(sql, (job_id, request_hash, time.time()))
        await self._db.commit()
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            await self.purge()

    async def purge(self) -> int:
        """Delete expired keys; returns how many."""
        cursor = await self._db.execute(
            "DELETE FROM idempotency_keys WHERE created_at <= ?", (time.time() - self._ttl,)
        )
        await self._db.commit()
        return cursor.rowcount
