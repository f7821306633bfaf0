"""The Python limit: produce a record, see it consumed, with the clients jobrelay uses.

Each target produces the same Avro-sized value with acks=all and idempotence, keyed by a
unique counter, and a consumer in the same process marks the key complete when the record
arrives. No work, no second hop: the best any Python service on Kafka could do here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from aiokafka import AIOKafkaConsumer
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from bench.loadgen import CompletionLog, Target
from jobrelay.config.settings import KafkaSettings
from jobrelay.messaging.clients import make_consumer, make_producer, topic_partitions

__all__ = ["aiokafka_loop", "confluent_loop"]


async def _observe(consumer: AIOKafkaConsumer, log: CompletionLog) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=5_000)
        for records in batches.values():
            for record in records:
                log.complete(record.key.decode())


@asynccontextmanager
async def aiokafka_loop(kafka: KafkaSettings, topic: str, value: bytes) -> AsyncIterator[Target]:
    """aiokafka producer (jobrelay's defaults: acks=all, idempotent, linger 2 ms) → read_committed consumer."""
    log, keys = CompletionLog(), itertools.count()
    producer = make_producer(kafka, "bench-raw")
    consumer = make_consumer(kafka, "bench-raw", group_id=None, fetch_max_wait_ms=5)
    await producer.start()
    await consumer.start()
    observer: asyncio.Task[None] | None = None
    try:
        consumer.assign(await topic_partitions(consumer, topic))
        await consumer.seek_to_end()
        observer = asyncio.create_task(_observe(consumer, log))

        async def submit(_: int) -> str:
            key = str(next(keys))
            await producer.send(topic, value, key=key.encode())  # queued; the consumer sees it arrive
            return key

        yield Target(submit, log)
    finally:
        if observer is not None:
            observer.cancel()
            with suppress(asyncio.CancelledError):
                await observer
        await consumer.stop()
        await producer.stop()


def _poll(consumer: Consumer, log: CompletionLog, stop: threading.Event) -> None:
    while not stop.is_set():
        # consume() waits for a full batch or its timeout, which would add up to 100 ms:
        # block for one record, then take whatever else has already arrived.
        first = consumer.poll(0.1)
        if first is None:
            continue
        for message in [first, *consumer.consume(num_messages=5_000, timeout=0)]:
            key = message.key() if message.error() is None else None
            if key is not None:
                log.complete(key.decode())


@asynccontextmanager
async def confluent_loop(kafka: KafkaSettings, topic: str, value: bytes) -> AsyncIterator[Target]:
    """confluent-kafka producer (acks=all, idempotent, linger 2 ms) → read_committed consumer thread."""
    log, keys, stop = CompletionLog(), itertools.count(), threading.Event()
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})  # fmt: skip
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "bench-raw-unused",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})  # fmt: skip
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in metadata.topics[topic].partitions])
    thread = threading.Thread(target=_poll, args=(consumer, log, stop), name="bench-confluent-consumer", daemon=True)
    thread.start()

    async def submit(_: int) -> str:
        key = str(next(keys))
        while True:
            try:
                producer.produce(topic, value, key=key.encode())
                break
            except BufferError:  # the local queue is full: let librdkafka send
                producer.poll(0.005)
        producer.poll(0)
        return key

    try:
        yield Target(submit, log)
    finally:
        stop.set()
        thread.join(10)
        producer.flush(10)
        consumer.close()
