"""Helpers for tests against the real broker: read a topic to its end, with a deadline."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from jobrelay.config.settings import KafkaSettings
from jobrelay.messaging.clients import make_consumer, topic_partitions


async def read_all(
    kafka: KafkaSettings, topic: str, *, expect: int | None = None, deadline: float = 30.0, **overrides: Any
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` (read_committed unless overridden) up to its current end.

    With `expect`, keeps reading until that many records arrived or the deadline passed.
    """
    consumer = make_consumer(kafka, "test-reader", **overrides)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await _drain(consumer, partitions, expect, time.monotonic() + deadline)
    finally:
        await consumer.stop()


async def _drain(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], expect: int | None, deadline: float
) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    while time.monotonic() < deadline:
        batch = await consumer.getmany(*partitions, timeout_ms=200)
        records.extend(r for rs in batch.values() for r in rs)
        if expect is not None:
            if len(records) >= expect:
                break
            continue
        ends = await consumer.end_offsets(partitions)
        positions = [await consumer.position(tp) for tp in partitions]
        if all(position >= ends[tp] for position, tp in zip(positions, partitions, strict=True)):
            break
    return records
