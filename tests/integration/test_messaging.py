"""Real Avro events through a real broker: every topic, both framings, transactions, poison."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCompleted,
    JobDeadLettered,
    JobProgress,
    JobRequested,
    ProgressKind,
    TerminalStatus,
)
from jobrelay.messaging.clients import EventProducer, make_consumer, make_producer, topic_for
from jobrelay.messaging.codec import AvroCodec, ConfluentFraming
from jobrelay.messaging.headers import header
from jobrelay.messaging.loop import ConsumerLoop, Received
from jobrelay.messaging.schemas import load_schemas
from tests.integration.kafkautil import read_all

pytestmark = pytest.mark.kafka


def _life_of_a_job() -> list[Event]:
    job = str(uuid.uuid4())
    return [
        JobRequested(job_id=job, job_type="demo.echo", payload='{"n": 1}', request_hash="h"),
        JobProgress(job_id=job, job_type="demo.echo", sequence=1, kind=ProgressKind.STARTED),
        JobCompleted(job_id=job, job_type="demo.echo", sequence=2, status=TerminalStatus.SUCCEEDED, result="1"),
        JobDeadLettered(
            stage="test",
            reason=DeadLetterReason.OTHER,
            source_topic="x",
            source_partition=0,
            source_offset=0,
            job_id=job,
        ),
    ]


def _codec(framing: str) -> AvroCodec:
    if framing == "single-object":
        return AvroCodec()
    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})
    return AvroCodec(framing=ConfluentFraming(load_schemas(), registry))


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
async def test_events_of_every_topic_round_trip_through_kafka(
    kafka_settings: KafkaSettings, topics: TopicSettings, framing: str, spans: InMemorySpanExporter
) -> None:
    codec = _codec(framing)
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        publisher = EventProducer(producer, codec, topics, "/jobrelay/test")
        events = _life_of_a_job()
        partitions = {(await publisher.publish(e)).partition for e in events}
    finally:
        await producer.stop()
    assert len(partitions) == 1, "co-partitioned: one job, one partition number in every topic"
    for event in events:
        (record,) = await read_all(kafka_settings, topic_for(event, topics), expect=1)
        assert codec.decode(record.value, topic=record.topic, partition=record.partition, offset=record.offset) == event
        assert record.key == event.job_id.encode()  # type: ignore[union-attr]
        assert header(record.headers, "ce_id") == event.event_id
        assert header(record.headers, "ce_subject") == event.job_id
        assert header(record.headers, "ce_specversion") == "1.0"
        assert header(record.headers, "ce_type") == f"jobrelay.job.{_ce(event)}.v1"
        assert header(record.headers, "content-type") == "application/avro"
        assert header(record.headers, "ce_source") == "/jobrelay/test"
        span = next(s for s in spans.get_finished_spans() if s.name == f"send {record.topic}")
        traceparent = header(record.headers, "traceparent") or ""
        assert traceparent.startswith(f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-")
        assert span.attributes is not None and span.attributes["jobrelay.job_id"] == event.job_id
        assert span.attributes["messaging.system"] == "kafka"


def _ce(event: Event) -> str:
    return {
        "JobRequested": "requested",
        "JobProgress": "progress",
        "JobCompleted": "completed",
        "JobDeadLettered": "dead_lettered",
    }[type(event).__name__]


async def test_read_committed_sees_committed_transactions_and_never_aborted_ones(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    codec = AvroCodec()
    job = str(uuid.uuid4())
    producer = make_producer(kafka_settings, "test-tx", transactional_id=f"test-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topics.completed, codec.encode(_done(job, "committed")), key=job.encode())
        await producer.begin_transaction()
        await producer.send_and_wait(topics.completed, codec.encode(_done(job, "aborted")), key=job.encode())
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topics.completed, codec.encode(_done(job, "after")), key=job.encode())
    finally:
        await producer.stop()
    committed = [codec.decode(r.value).result for r in await read_all(kafka_settings, topics.completed)]  # type: ignore[union-attr]
    assert committed == ['"committed"', '"after"']
    everything = await read_all(kafka_settings, topics.completed, isolation_level="read_uncommitted")
    assert '"aborted"' in [codec.decode(r.value).result for r in everything]  # type: ignore[union-attr]


def _done(job: str, result: str) -> JobCompleted:
    return JobCompleted(
        job_id=job, job_type="demo.echo", sequence=1, status=TerminalStatus.SUCCEEDED, result=f'"{result}"'
    )


async def test_consumer_loop_dead_letters_poison_and_keeps_going(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    codec = AvroCodec()
    good = _life_of_a_job()[0]
    key = good.job_id.encode()  # type: ignore[union-attr]
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    consumer = make_consumer(kafka_settings, "test", topics.requested, group_id=f"g-{uuid.uuid4()}")
    await consumer.start()
    try:
        poison = await producer.send_and_wait(
            topics.requested, b"\x00not avro", key=key, headers=[("origin", b"fuzzer")]
        )
        await producer.send_and_wait(topics.requested, codec.encode(good), key=key)
        handled: list[Received] = []

        async def handler(batch: Sequence[Received]) -> None:
            handled.extend(batch)

        loop = ConsumerLoop(
            consumer,
            codec,
            handler,
            service="test",
            dead_letters=EventProducer(producer, codec, topics, "/jobrelay/test"),
        )
        assert await loop.run(count=2, timeout=30) == 2
        committed = await consumer.committed(next(iter(consumer.assignment() & {_tp(poison)})))
    finally:
        await consumer.stop()
        await producer.stop()
    assert [r.event for r in handled] == [good]
    assert committed == poison.offset + 2, "both records are committed: the poison does not block the partition"
    (record,) = await read_all(kafka_settings, topics.dlq, expect=1)
    letter = codec.decode(record.value)
    assert isinstance(letter, JobDeadLettered)
    assert letter.reason is DeadLetterReason.UNDECODABLE and letter.stage == "test"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        topics.requested,
        poison.partition,
        poison.offset,
    )
    assert letter.original_value == b"\x00not avro" and letter.original_key == key
    assert [(h.key, h.value) for h in letter.original_headers] == [("origin", b"fuzzer")]
    assert letter.job_id == good.job_id and f"offset {poison.offset}" in letter.error_message
    assert record.key == key


def _tp(metadata: Any) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(metadata.topic, metadata.partition)


async def test_consumer_loop_stops_after_the_batch_in_hand(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    codec = AvroCodec()
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    publisher = EventProducer(producer, codec, topics, "/jobrelay/test")
    for _ in range(5):
        await publisher.publish(_life_of_a_job()[0])
    consumer = make_consumer(kafka_settings, "test", topics.requested, group_id=f"g-{uuid.uuid4()}")
    await consumer.start()
    seen: list[Received] = []

    async def handler(batch: Sequence[Received]) -> None:
        seen.extend(batch)
        loop.stop()  # as SIGTERM would

    loop = ConsumerLoop(consumer, codec, handler, service="test", dead_letters=publisher, max_records=2)
    try:
        consumed = await loop.run(timeout=30)
        committed = {tp: await consumer.committed(tp) or 0 for tp in consumer.assignment()}
    finally:
        await consumer.stop()
        await producer.stop()
    assert 1 <= consumed <= 2 and len(seen) == consumed
    assert sum(committed.values()) == consumed, "what was handled is committed, nothing more"
