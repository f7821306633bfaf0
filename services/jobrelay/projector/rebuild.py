"""Rebuild: replay the four topics from the beginning into a fresh generation, then swap it in.

The replay stops at the end offsets taken when it started; the retention purge runs on the
result, as on the live view; the generation is checkpointed and closed, and only then does the
`db_path` symlink move to it (atomically). A running projector notices and switches over.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_codec
from jobrelay.projector.feed import Feed, open_feed
from jobrelay.projector.hub import ChangeHub
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store import generations
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = ["RebuildReport", "rebuild"]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did."""

    generation: Path
    records: int
    seconds: float
    purged: int

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else float(self.records)


async def rebuild(
    settings: ProjectorSettings, kafka: KafkaSettings, topics: TopicSettings, *, swap: bool = True
) -> RebuildReport:
    """Replay everything into a new generation next to `settings.db_path`; swap it in unless told not to."""
    target = generations.new_generation(settings.db_path)
    store = await SqliteStore.open(target)
    hub = ChangeHub()
    feed = await open_feed(
        kafka,
        topics,
        make_codec(kafka),
        store,
        hub,
        dead_letters=None,
        batch_size=settings.rebuild_batch_size,
        trace=False,
    )
    try:
        started = time.perf_counter()
        records = await _replay(feed, hub, await feed.consumer.end_offsets(feed.partitions))
        seconds = time.perf_counter() - started
        now = datetime.now(UTC)
        purged = await store.purge(now - settings.retention, now)
        await store.checkpoint()
    finally:
        await feed.close()
    if swap:
        generations.swap(settings.db_path, target)
    return RebuildReport(target, records, seconds, len(purged))


async def _replay(feed: Feed, hub: ChangeHub, ends: dict[TopicPartition, int]) -> int:
    """Run the loop until every partition is read up to `ends`; returns the records read."""
    task = asyncio.create_task(feed.loop.run())
    try:
        while not await _reached(feed, hub, ends):
            if task.done():
                break  # the loop failed: its exception surfaces below
            await hub.wait_advanced(0.2)
    finally:
        feed.loop.stop()
    return await task


async def _reached(feed: Feed, hub: ChangeHub, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        stored = hub.position((tp.topic, tp.partition))
        # Past the last record, the consumer position also skips trailing transaction markers.
        position = stored if feed.loop.busy else max(stored, await feed.consumer.position(tp))
        if position < end:
            return False
    return True
