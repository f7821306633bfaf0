"""The Idempotency-Key memory: remembers hashes for its TTL, then forgets them."""

from __future__ import annotations

from pathlib import Path

from jobrelay.intake.store import IdempotencyStore


async def test_a_key_is_remembered_across_restarts_until_it_expires(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    async with IdempotencyStore.open(path, ttl_s=3600) as store:
        assert await store.lookup("job-1") is None
        await store.remember("job-1", "hash-a")
        assert await store.lookup("job-1") == "hash-a"
    async with IdempotencyStore.open(path, ttl_s=3600) as store:
        assert await store.lookup("job-1") == "hash-a", "a restart keeps the keys"
    async with IdempotencyStore.open(path, ttl_s=1e-9) as store:
        assert await store.lookup("job-1") is None, "past the TTL a key is forgotten"
        assert await store.purge() == 0, "opening already purged the expired key"
