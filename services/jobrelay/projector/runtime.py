"""The running projector: the current feed (store + consumer), its housekeeping, and what the API asks.

Housekeeping runs as background tasks: the lag monitor (lag per partition, readiness), the
retention purge, and the swap watcher that switches to a rebuilt generation when
`jobrelay projector rebuild` replaced the view file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import EventProducer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.partitioning import partition_for
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import CONSUMER_LAG
from jobrelay.projector.feed import SERVICE, Feed, open_feed
from jobrelay.projector.hub import ChangeHub
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store import generations
from jobrelay.projector.store.base import ViewStore
from jobrelay.projector.store.memory import MemoryStore
from jobrelay.projector.store.postgres import PostgresStore
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = ["Runtime", "open_store"]

log = get_logger(__name__)


async def open_store(settings: ProjectorSettings) -> tuple[ViewStore, Path | None]:
    """The configured store, and the generation file it lives in (None in memory and in PostgreSQL)."""
    if settings.store == "memory":
        return MemoryStore(), None
    if settings.store == "postgres":
        return await PostgresStore.open(settings.postgres_dsn), None
    path = generations.current(settings.db_path)
    return await SqliteStore.open(path), path


class Runtime:
    """Owns the feed and its background tasks; answers the API's questions about the view."""

    def __init__(
        self,
        settings: ProjectorSettings,
        kafka: KafkaSettings,
        topics: TopicSettings,
        codec: AvroCodec,
        dead_letters: EventProducer | None,
        offsets: AIOKafkaConsumer,
        *,
        trace: bool = True,
    ) -> None:
        """`trace`: a CONSUMER span per applied event (worth its cost only when spans are exported)."""
        self.settings, self.kafka, self.topics, self.codec, self.trace = settings, kafka, topics, codec, trace
        self.dead_letters, self.offsets = dead_letters, offsets
        self.hub = ChangeHub()
        self.lag: int | None = None  # records behind, over every partition (None until measured)
        self._feed: Feed | None = None
        self._path: Path | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def feed(self) -> Feed:
        """The feed in use now."""
        if self._feed is None:
            raise RuntimeError("the projector runtime is not started")
        return self._feed

    @property
    def store(self) -> ViewStore:
        """The store the view is read from now."""
        return self.feed.store

    async def start(self) -> None:
        """Open the store, start consuming, start the housekeeping."""
        self._feed = await self._open_feed()
        self._feed.start()
        self._every(self.settings.lag_interval_s, self.measure_lag)
        self._every(self.settings.purge_interval_s, self.purge)
        if self.settings.store == "sqlite":
            self._every(self.settings.swap_check_s, self.swap_if_rebuilt)

    async def stop(self) -> None:
        """Stop housekeeping, then the feed (after the batch in hand)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._feed is not None:
            await self._feed.stop()

    async def _open_feed(self) -> Feed:
        store, self._path = await open_store(self.settings)
        try:
            return await open_feed(
                self.kafka,
                self.topics,
                self.codec,
                store,
                self.hub,
                dead_letters=self.dead_letters,
                batch_size=self.settings.batch_size,
                trace=self.trace,
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                fetch_min_bytes=self.settings.fetch_min_bytes,
            )
        except BaseException:
            await store.close()
            raise

    def _every(self, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        async def repeat() -> None:
            while True:
                try:
                    await job()
                except Exception:
                    log.exception("projector housekeeping failed", job=getattr(job, "__name__", "?"))
                await asyncio.sleep(interval)  # a period, not a wait for a condition

        self._tasks.append(asyncio.create_task(repeat()))

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready once the feed runs and the lag is within the threshold."""
        if self._feed is None or self._feed.failed:
            return False, {"consumer": "failed" if self._feed else "starting", "lag": self.lag}
        ready = self.lag is not None and self.lag <= self.settings.ready_max_lag
        return ready, {"consumer": "running", "lag": self.lag, "max_lag": self.settings.ready_max_lag}

    async def _caught_up_to(self, ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Partitions of `ends` the view has fully applied, each with the offset it is at."""
        feed = self.feed
        done: dict[TopicPartition, int] = {}
        for tp, end in ends.items():
            stored = self.hub.position((tp.topic, tp.partition))
            position = await feed.consumer.position(tp)
            # The consumer position also moves past transaction markers, which the stored offsets
            # never cover; it counts only while no fetched batch is waiting to be stored.
            at = max(stored, position) if not feed.loop.busy else stored
            if at >= end:
                done[tp] = at
        return done

    async def measure_lag(self) -> None:
        """Records behind the partitions' (committed) end, per partition and in total."""
        ends = await self.offsets.end_offsets(self.feed.partitions)
        caught = await self._caught_up_to(ends)
        total = 0
        for tp, end in ends.items():
            behind = 0 if tp in caught else max(0, end - self.hub.position((tp.topic, tp.partition)))
            CONSUMER_LAG.labels(SERVICE, tp.topic, str(tp.partition)).set(behind)
            total += behind
        self.lag = total

    async def catch_up(self, job_id: str) -> bool:
        """Wait (bounded) until the view applied everything already on `job_id`'s partition; False on timeout."""
        count = len([tp for tp in self.feed.partitions if tp.topic == self.topics.requested])
        partition = partition_for(job_id, count)
        ends = await self.offsets.end_offsets([TopicPartition(topic, partition) for topic in self.topics.all()])
        clock = asyncio.get_running_loop().time
        deadline = clock() + self.settings.catch_up_timeout_s
        while len(await self._caught_up_to(ends)) < len(ends):
            remaining = deadline - clock()
            if remaining <= 0:
                return False
            # Woken by each stored batch; the short cap covers positions that move past
            # transaction markers without a batch to store.
            await self.hub.wait_advanced(min(remaining, 0.05))
        return True

    async def purge(self) -> list[str]:
        """Drop terminal jobs past retention (their ids answer 410 from now on)."""
        now = datetime.now(UTC)
        gone = await self.store.purge(now - self.settings.retention, now)
        if gone:
            log.info("purged terminal jobs past retention", count=len(gone))
            self.hub.changed(gone)
        return gone

    async def swap_if_rebuilt(self) -> None:
        """Switch to the generation `db_path` points at, if a rebuild replaced it."""
        if self._path is None or generations.current(self.settings.db_path) == self._path:
            return
        old = self._feed
        if old is not None:
            await old.halt()  # readers keep reading the old view until the new one takes over
        new = await self._open_feed()
        new.start()
        self._feed = new
        log.info("switched to the rebuilt view", generation=str(self._path))
        if old is not None:
            await old.close()
        for stale in generations.older_generations(self.settings.db_path, generations.current(self.settings.db_path)):
            stale.unlink(missing_ok=True)
