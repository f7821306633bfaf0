"""Job outcomes as the processor writes them: built by its own code, published in Kafka transactions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from aiokafka import TopicPartition

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobError, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.messaging.clients import EventProducer, make_admin, make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.processor.outputs import completed, progress


def request(job_type: str = "report.generate") -> JobRequested:
    """A job's request, as the intake would have published it."""
    return JobRequested(job_id=str(uuid.uuid4()), job_type=job_type, payload='{"n": 1}', request_hash="h")


def outcome(job_type: str = "report.generate", status: TerminalStatus = TerminalStatus.SUCCEEDED) -> JobCompleted:
    """The processor's JobCompleted for a fresh job: a result when it succeeded, an error otherwise."""
    job = request(job_type)
    if status is TerminalStatus.SUCCEEDED:
        return completed(job, 1, status, result=json.dumps({"rows": len(job.job_id)}))
    return completed(job, 1, status, error=JobError(status.value.lower(), f"{job_type} ended {status.value}"))


def started(job_type: str = "report.generate") -> JobProgress:
    """The processor's STARTED progress event for a fresh job."""
    return progress(request(job_type), 1, 1, ProgressKind.STARTED, worker="test")


async def publish(
    kafka: KafkaSettings,
    topics: TopicSettings,
    events: Sequence[JobCompleted | JobProgress],
    *,
    aborted: Sequence[JobCompleted] = (),
    codec: AvroCodec | None = None,
) -> None:
    """`events` in one committed transaction (as the processor writes them); `aborted` in one rolled back."""
    producer = make_producer(kafka, "test-outcomes", transactional_id=f"test-outcomes-{uuid.uuid4().hex}")
    await producer.start()
    try:
        publisher = EventProducer(producer, codec or AvroCodec(), topics, "/jobrelay/processor")
        if aborted:
            await producer.begin_transaction()
            for rolled_back in aborted:
                await publisher.publish(rolled_back)
            await producer.abort_transaction()
        async with producer.transaction():
            for event in events:
                await publisher.publish(event)
    finally:
        await producer.stop()


async def send_raw(kafka: KafkaSettings, topic: str, value: bytes, *, partition: int | None = None) -> int:
    """Write raw bytes to `topic`, as a misbehaving producer would; returns the record's offset."""
    producer = make_producer(kafka, "test-raw")
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, value, key=b"garbage", partition=partition)
        return int(metadata.offset)
    finally:
        await producer.stop()


async def committed_offsets(kafka: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    """The offsets `group` committed, by partition."""
    admin = make_admin(kafka, "test-offsets")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()
