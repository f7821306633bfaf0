"""Durable delivery state: what is to be delivered, to whom, how often it was tried, and why it ended.

`DeliveryStore` is the port; `store/sqlite.py` is the default adapter, `store/postgres.py` keeps
the state on a PostgreSQL server; `open_store` opens the configured one. Times are Unix seconds
(floats).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from jobrelay.notifier.settings import NotifierSettings

__all__ = [
    "Completion",
    "Delivery",
    "DeliveryState",
    "DeliveryStore",
    "NewDelivery",
    "Partition",
    "host_of",
    "open_store",
]

Partition = tuple[str, int]  # (topic, partition)


def host_of(url: str) -> str:
    """The host:port a URL is sent to: the unit of the per-host concurrency limit."""
    try:
        parts = urlsplit(url)
        return f"{(parts.hostname or '').lower()}:{parts.port or ''}"
    except ValueError:  # not a URL: the SSRF guard refuses it, any key will do
        return url[:200]


class DeliveryState(enum.StrEnum):
    """Where a delivery stands; every state but PENDING is final."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed
    GONE = "gone"  # the endpoint answered 410: it is disabled
    DISABLED = "disabled"  # not attempted: the endpoint was disabled by an earlier 410
    REFUSED = "refused"  # not attempted: the URL is not allowed (SSRF guard) or its signer vanished


@dataclass(frozen=True, slots=True)
class Completion:
    """A consumed JobCompleted record: the webhook body, and the record itself for a dead letter."""

    event_id: str
    job_id: str
    job_type: str
    body: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One endpoint a completion goes to; `subscription` is None for the job's own callback URL."""

    url: str
    subscription: str | None = None

    @property
    def host(self) -> str:
        """The per-host limit's key."""
        return host_of(self.url)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stored delivery with its completion."""

    id: int
    url: str
    host: str
    subscription: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    completion: Completion

    @property
    def webhook_id(self) -> str:
        """Stable across retries: the JobCompleted event id."""
        return self.completion.event_id


class DeliveryStore(Protocol):
    """What the notifier needs from its database."""

    async def record(
        self, batch: Sequence[tuple[Completion, Sequence[NewDelivery]]], offsets: Mapping[Partition, int], now: float
    ) -> int:
        """Store completions, their deliveries and the next offsets in one transaction; return new deliveries.

        Idempotent: a completion or (event id, URL) already stored is left as it is.
        """
        ...

    async def offsets(self) -> dict[Partition, int]:
        """The next offset to consume per partition, as last recorded."""
        ...

    async def due(self, now: float, limit: int, per_host: int) -> list[Delivery]:
        """Pending deliveries due at `now`, oldest first, at most `per_host` per host (so no host hogs the window).

        A store shared by several replicas (PostgreSQL) claims what it returns for this replica until
        `retry_later`, `finish` or `release`, or until the claim's lease runs out (a replica that died):
        no other replica gets them meanwhile, and `per_host` counts every replica's claims.
        """
        ...

    async def release(self, delivery_ids: Collection[int]) -> None:
        """Hand back claimed deliveries that were not attempted (they are due again at once)."""
        ...

    async def next_due_at(self, after: float) -> float | None:
        """When the earliest pending delivery due after `after` is due (None: none)."""
        ...

    async def retry_later(self, delivery_id: int, *, attempts: int, at: float, status: int | None, error: str) -> None:
        """Record a failed attempt and when to try again."""
        ...

    async def finish(
        self, delivery_id: int, state: DeliveryState, *, attempts: int, status: int | None, error: str | None
    ) -> None:
        """Record a final state; failures (all but DELIVERED) are queued for job-dlq in the same write."""
        ...

    async def disable_url(self, url: str, status: int, reason: str, now: float) -> None:
        """Never call `url` again (it answered 410 Gone)."""
        ...

    async def disabled(self, url: str) -> str | None:
        """Why `url` is disabled, or None when it is not."""
        ...

    async def enable_url(self, url: str) -> bool:
        """Allow calls to `url` again (an operator's decision); False when it was not disabled."""
        ...

    async def deliveries_of(self, job_id: str) -> list[Delivery]:
        """Every delivery of a job's completion, for operators."""
        ...

    async def dead_letters_pending(self, limit: int) -> list[Delivery]:
        """Final failures whose JobDeadLettered has not been acknowledged by Kafka yet."""
        ...

    async def dead_lettered(self, delivery_id: int) -> None:
        """Kafka acknowledged the JobDeadLettered of this delivery."""
        ...

    async def counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state."""
        ...

    async def close(self) -> None:
        """Release the database."""
        ...


async def open_store(settings: NotifierSettings) -> DeliveryStore:
    """The configured store: the SQLite file `settings.database`, or PostgreSQL at `settings.postgres_dsn`."""
    # Imported here: the adapters import this module's types.
    if settings.store == "postgres":
        from jobrelay.notifier.store.postgres import PostgresDeliveryStore

        return await PostgresDeliveryStore.open(
            settings.postgres_dsn, owner=settings.replica_id, lease_s=settings.claim_lease_s
        )
    from jobrelay.notifier.store.sqlite import SqliteDeliveryStore

    return await SqliteDeliveryStore.open(settings.database)
