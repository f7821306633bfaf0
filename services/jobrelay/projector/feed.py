"""The projector's consumer: every partition of the four topics, resumed from the store's positions.

Manual assignment (no consumer group): each replica reads everything into its own view, and
the offsets that count are the ones stored with the view, not group commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Counter

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import DeadLetterReason
from jobrelay.messaging.clients import EventProducer, make_consumer, topic_partitions
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.loop import ConsumerLoop
from jobrelay.observability.logging import get_logger
from jobrelay.projector.apply import Projector
from jobrelay.projector.hub import ChangeHub
from jobrelay.projector.store.base import Position, ViewStore

__all__ = ["SKIPPED", "Feed", "ProjectorLoop", "assign", "open_feed"]

SERVICE = "projector"
log = get_logger(__name__)
SKIPPED = Counter("jobrelay_projector_undecodable_skipped_total", "Undecodable records skipped (rebuilds)")


class ProjectorLoop(ConsumerLoop):
    """The shared loop; without a dead-letter producer (a rebuild) it skips undecodable records.

    A rebuild re-reads records the live projector already dead-lettered, and their letters are on
    job-dlq too: publishing them again would only duplicate them.
    """

    busy = False  # True from the moment a fetched batch is in hand until it is stored

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Handle one batch; `busy` tells readers the consumer position is ahead of the store meanwhile."""
        # getmany() returns into process() without yielding to the event loop, so no reader can
        # see the advanced position of a batch that is not flagged busy yet.
        self.busy = True
        try:
            await super().process(records)
        finally:
            self.busy = False

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: DeadLetterReason, error: str) -> None:
        """Dead-letter `record`, or skip it when this loop has no producer."""
        if self.dead_letters is not None:
            await super().dead_letter(record, reason, error)
            return
        SKIPPED.inc()
        log.warning("undecodable record skipped", topic=record.topic, partition=record.partition, offset=record.offset)


async def assign(
    consumer: AIOKafkaConsumer, topics: TopicSettings, positions: Mapping[Position, int]
) -> list[TopicPartition]:
    """Assign every partition of the four topics and seek each to its stored position (or the start)."""
    partitions = [tp for topic in topics.all() for tp in await topic_partitions(consumer, topic)]
    if not partitions:
        raise RuntimeError(f"none of the topics {', '.join(topics.all())} exists: run `jobrelay topics ensure`")
    consumer.assign(partitions)
    fresh = [tp for tp in partitions if (tp.topic, tp.partition) not in positions]
    for tp in partitions:
        if tp not in fresh:
            consumer.seek(tp, positions[(tp.topic, tp.partition)])
    if fresh:  # one reset for all: each call waits for the fetcher's next round
        await consumer.seek_to_beginning(*fresh)
    return partitions


@dataclass(eq=False)
class Feed:
    """One store being fed by one consumer loop."""

    store: ViewStore
    consumer: AIOKafkaConsumer
    loop: ProjectorLoop
    partitions: list[TopicPartition]
    task: asyncio.Task[int] | None = field(default=None)

    def start(self) -> None:
        """Run the loop in the background."""
        self.task = asyncio.create_task(self.loop.run(), name="projector-feed")
        self.task.add_done_callback(_report_failure)

    @property
    def failed(self) -> bool:
        """Whether the loop died (the view no longer advances)."""
        return self.task is not None and self.task.done() and not self.loop.stopping

    async def halt(self) -> None:
        """Stop consuming after the batch in hand (the store stays open for readers)."""
        self.loop.stop()
        if self.task is not None:
            with contextlib.suppress(Exception):  # already reported by _report_failure
                await self.task

    async def close(self) -> None:
        """Close the consumer and the store."""
        await self.consumer.stop()
        await self.store.close()

    async def stop(self) -> None:
        """Halt, then close."""
        await self.halt()
        await self.close()


def _report_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the projector's consumer loop failed; the view no longer advances", exc_info=task.exception())


async def open_feed(
    kafka: KafkaSettings,
    topics: TopicSettings,
    codec: AvroCodec,
    store: ViewStore,
    hub: ChangeHub,
    *,
    dead_letters: EventProducer | None,
    batch_size: int,
    trace: bool = True,
    fetch_max_wait_ms: int = 500,
    fetch_min_bytes: int = 1,
) -> Feed:
    """A started consumer, assigned and positioned from `store`, with its loop (not running yet)."""
    consumer = make_consumer(
        kafka,
        SERVICE,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=fetch_max_wait_ms,
        fetch_min_bytes=fetch_min_bytes,
    )
    await consumer.start()
    try:
        positions = await store.positions()
        partitions = await assign(consumer, topics, positions)
    except BaseException:
        await consumer.stop()
        raise
    hub.reset(positions)
    projector = Projector(store, hub, requested_topic=topics.requested, trace=trace)
    loop = ProjectorLoop(
        consumer,
        codec,
        projector.stage,
        service=SERVICE,
        dead_letters=dead_letters,
        commit=False,
        max_records=batch_size,
        on_offsets=projector.flush,
    )
    return Feed(store, consumer, loop, partitions)
