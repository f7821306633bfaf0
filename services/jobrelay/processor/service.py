"""The running processor: its Kafka clients, the engine and the consumer loop, started and stopped in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_admin, make_codec, make_consumer
from jobrelay.messaging.loop import ConsumerLoop
from jobrelay.processor.engine import Clients, Engine
from jobrelay.processor.handlers import Registry
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
        clients = await _clients(stack, kafka, settings)
        engine = Engine(
            clients, make_codec(kafka), registry, kafka=kafka, topics=topics, settings=settings, on_fatal=on_fatal
        )
        loop = ConsumerLoop(
            clients.consumer,
            engine.codec,
            engine.handle,
            service="processor",
            dead_letters=None,
            commit=False,
            on_poison=engine.on_poison,
        )
        clients.consumer.subscribe([topics.requested], listener=engine.listener)
        await clients.consumer.start()
        stack.push_async_callback(clients.consumer.stop)  # last: leaves the group after the drain
        task = asyncio.create_task(loop.run(), name="processor-consumer-loop")
        task.add_done_callback(lambda done: _check(done, engine))
        try:
            yield engine
        finally:
            loop.stop()  # stop fetching; the batch in hand is only admitted, never waited for
            await asyncio.gather(task, return_exceptions=True)
            await engine.shutdown()


async def _clients(stack: AsyncExitStack, kafka: KafkaSettings, settings: ProcessorSettings) -> Clients:
    admin = make_admin(kafka, "processor-admin")
    await admin.start()
    stack.push_async_callback(admin.close)
    reader = make_consumer(kafka, "processor-history")
    await reader.start()
    stack.push_async_callback(reader.stop)
    consumer = make_consumer(
        kafka,
        "processor",
        group_id=settings.group_id,
        session_timeout_ms=settings.session_timeout_ms,
        max_poll_records=500,
    )
    return Clients(consumer=consumer, admin=admin, reader=reader)


def _check(task: asyncio.Task[int], engine: Engine) -> None:
    if not task.cancelled() and task.exception() is not None:
        engine.fail(task.exception())  # type: ignore[arg-type]
