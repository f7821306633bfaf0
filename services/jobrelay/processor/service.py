"""The running processor: its Kafka clients, the outbox, the engine and the fetcher, started and stopped in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_codec
from jobrelay.processor.engine import Engine
from jobrelay.processor.fetcher import Fetcher
from jobrelay.processor.handlers import Registry
from jobrelay.processor.kafka import TransactionalWriter, lock_slot, make_group_consumer, make_reader, transactional_id
from jobrelay.processor.outbox import Outbox
from jobrelay.processor.seen import SeenIndex
from jobrelay.processor.settings import ProcessorSettings

__all__ = ["running"]


@asynccontextmanager
async def running(
    kafka: KafkaSettings,
    topics: TopicSettings,
    settings: ProcessorSettings,
    registry: Registry,
    on_fatal: Callable[[BaseException], None],
) -> AsyncIterator[Engine]:
    """Run the processor until the block exits; then drain (shutdown grace), commit and close."""
    async with AsyncExitStack() as stack:
        slot, lock = lock_slot(settings)
        stack.callback(lock.close)
        seen = SeenIndex(settings.dedupe_window_s)
        stack.callback(seen.close)
        consumer = make_group_consumer(kafka, settings)
        stack.push_async_callback(asyncio.to_thread, consumer.close)  # last: leaves the group after the drain
        reader = make_reader(kafka)
        stack.push_async_callback(asyncio.to_thread, reader.close)
        codec = make_codec(kafka)
        fetcher = Fetcher(
            consumer, reader, codec, seen, topic=topics.requested, history_topic=topics.completed,
            rebalance_grace_s=settings.rebalance_grace_s, timeout_s=max(30.0, settings.transaction_timeout_ms / 500),
        )  # fmt: skip
        writer = TransactionalWriter(kafka, settings, transactional_id(settings, slot), lambda: fetcher.group_metadata)
        await asyncio.to_thread(writer.start)
        stack.push_async_callback(asyncio.to_thread, writer.close)
        linger = settings.commit_interval_s
        outbox = Outbox(writer, topics.requested, linger=linger, on_fatal=lambda exc: engine.fail(exc))
        stack.push_async_callback(outbox.close)
        engine = Engine(fetcher, outbox, seen, codec, registry, topics=topics, settings=settings, on_fatal=on_fatal)
        fetcher.start(engine)
        try:
            yield engine
        finally:
            await fetcher.stop()  # stop fetching; the batch in hand is only admitted, never waited for
            await engine.shutdown()
