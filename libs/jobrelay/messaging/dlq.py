"""Reading and replaying job-dlq: what `jobrelay dlq list|replay` does.

A dead letter keeps the original record's bytes, key, headers and coordinates. Replaying it
after a fix:
- a dead-lettered *request* (its original value decodes as a JobRequested) becomes a NEW job
  with a fresh id and the same type, payload and options, because the old job already has its
  one terminal outcome (FAILED) and must keep it; the new job's `client_id` records the link;
- anything else (e.g. bytes that could not be decoded before a schema was deployed) is
  re-published unchanged, with its original key and headers, to the topic it came from.
Either way a `jobrelay-replay-of` header names the dead letter (topic/partition@offset).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobDeadLettered, JobRequested, new_event_id, utcnow
from jobrelay.messaging.clients import make_consumer, topic_partitions
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.headers import event_headers

__all__ = ["DeadLetter", "Replayed", "read_dead_letters", "replay"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter and where it sits in job-dlq."""

    letter: JobDeadLettered
    partition: int
    offset: int

    @property
    def ref(self) -> str:
        """`partition@offset`, how the CLI names a dead letter."""
        return f"{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay published."""

    source: DeadLetter
    topic: str
    job_id: str | None  # the new job's id when a request was replayed as a new job


async def read_dead_letters(
    kafka: KafkaSettings, topics: TopicSettings, codec: AvroCodec, deadline: float = 30.0
) -> list[DeadLetter]:
    """Every dead letter currently in job-dlq (read_committed), oldest first per partition."""
    consumer = make_consumer(kafka, "dlq-reader")
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        partitions = await topic_partitions(consumer, topics.dlq)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        stop_at = time.monotonic() + deadline
        while time.monotonic() < stop_at and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for record in (r for rs in batch.values() for r in rs):
                letters.extend(_decode(codec, record.value, record.partition, record.offset))
    finally:
        await consumer.stop()
    return letters


def _decode(codec: AvroCodec, value: bytes, partition: int, offset: int) -> list[DeadLetter]:
    try:
        event = codec.decode(value)
    except SerializationError:
        return []  # not ours to show: a dead letter that is itself unreadable stays for inspection
    return [DeadLetter(event, partition, offset)] if isinstance(event, JobDeadLettered) else []


async def replay(producer: AIOKafkaProducer, codec: AvroCodec, topics: TopicSettings, dead: DeadLetter) -> Replayed:
    """Publish `dead` again (see the module doc) and wait for Kafka's acknowledgement."""
    marker = ("jobrelay-replay-of", f"{topics.dlq}/{dead.ref}".encode())
    request = _as_request(codec, dead.letter)
    if request is not None:
        fresh = dataclasses.replace(
            request,
            job_id=str(uuid.uuid4()),
            event_id=new_event_id(),
            occurred_at=utcnow(),
            idempotency_key=None,
            client_id=f"replay-of:{request.job_id}",
            attempt=1,
        )
        headers = [*event_headers(fresh, "/jobrelay/cli"), marker]
        value = codec.encode(fresh)
        await producer.send_and_wait(topics.requested, value, key=fresh.job_id.encode(), headers=headers)
        return Replayed(dead, topics.requested, fresh.job_id)
    letter = dead.letter
    headers = [(h.key, h.value or b"") for h in letter.original_headers if h.key != marker[0]] + [marker]
    await producer.send_and_wait(letter.source_topic, letter.original_value, key=letter.original_key, headers=headers)
    return Replayed(dead, letter.source_topic, None)


def _as_request(codec: AvroCodec, letter: JobDeadLettered) -> JobRequested | None:
    if letter.original_value is None:
        return None
    try:
        event = codec.decode(letter.original_value)
    except SerializationError:
        return None
    return event if isinstance(event, JobRequested) else None
