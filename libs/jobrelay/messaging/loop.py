"""The one consumer loop every service uses.

It fetches batches, decodes them with the codec, sends what cannot be decoded to job-dlq (with
the original bytes, headers and coordinates) instead of stopping, hands the rest to the
service's batch handler, and commits the batch's offsets after the handler returned. It stops
on `stop()` (SIGTERM) after the batch in hand, or on the test stop conditions of `run()`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from jobrelay.jobs.events import DeadLetterReason, Event, JobDeadLettered, RecordHeader
from jobrelay.messaging.clients import EventProducer
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import CONSUMED, CONSUMER_LAG, DEAD_LETTERED

__all__ = [
    "BatchHandler",
    "ConsumerLoop",
    "OffsetsHandler",
    "PoisonHandler",
    "Received",
    "dead_letter_for",
    "received",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded event with where it came from."""

    event: Event
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    value: bytes = b""  # the record's original bytes, for dead letters written after decoding
    # The raw record, for consumers that may have to dead-letter it later with its original bytes.
    record: ConsumerRecord[bytes, bytes] | None = field(default=None, repr=False, compare=False)


def received(event: Event, record: ConsumerRecord[bytes, bytes]) -> Received:
    """`event`, decoded from `record`, with where it came from."""
    return Received(
        event,
        record.topic,
        record.partition,
        record.offset,
        record.key,
        tuple(record.headers),
        record.timestamp,
        record.value or b"",
        record,
    )


BatchHandler = Callable[[Sequence[Received]], Awaitable[None]]
# Told, after the batch handler, the next offset of every partition in the batch (dead-lettered
# records included), so a consumer that keeps its own offsets stores them with what it handled.
OffsetsHandler = Callable[[Mapping[TopicPartition, int]], Awaitable[None]]
# Takes over an undecodable record instead of the loop's own dead-lettering (e.g. to write the
# dead letter inside the consumer's own transaction).
PoisonHandler = Callable[[ConsumerRecord[bytes, bytes], SerializationError], Awaitable[None]]


def dead_letter_for(
    record: ConsumerRecord[bytes, bytes], stage: str, reason: DeadLetterReason, error: str, attempts: int = 1
) -> JobDeadLettered:
    """A JobDeadLettered carrying everything needed to replay `record`."""
    return JobDeadLettered(
        stage=stage,
        reason=reason,
        error_message=error[:4000],
        attempts=attempts,
        job_id=_job_id_from_key(record.key),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        original_key=record.key,
        original_value=record.value,
        original_headers=tuple(RecordHeader(k, v) for k, v in record.headers),
    )


def _job_id_from_key(key: bytes | None) -> str | None:
    try:
        return str(uuid.UUID(key.decode())) if key else None
    except (ValueError, UnicodeDecodeError):
        return None


class ConsumerLoop:
    """Fetch, decode (dead-lettering poison), handle, commit; until stopped."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        codec: AvroCodec,
        handler: BatchHandler,
        *,
        service: str,
        dead_letters: EventProducer | None,
        commit: bool = True,
        max_records: int = 500,
        poll_timeout_ms: int = 100,
        on_offsets: OffsetsHandler | None = None,
        on_poison: PoisonHandler | None = None,
    ) -> None:
        """`commit=False` for consumers without a group, which keep their own offsets (see `on_offsets`).

        `on_poison`, when given, receives undecodable records instead of `dead_letters`.
        """
        self.consumer, self.codec, self.handler = consumer, codec, handler
        self.service, self.dead_letters, self.commit = service, dead_letters, commit
        self.max_records, self.poll_timeout_ms = max_records, poll_timeout_ms
        self.on_offsets, self.on_poison = on_offsets, on_poison
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the loop to return after the batch in hand (safe from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stopping.is_set()

    async def run(self, *, count: int | None = None, timeout: float | None = None, idle: float | None = None) -> int:
        """Consume until stopped; or after `count` records, `timeout` seconds, or `idle` quiet seconds.

        Returns how many records were consumed (dead-lettered ones included).
        """
        consumed, started = 0, time.monotonic()
        last_record = started
        while not self._stopping.is_set():
            now = time.monotonic()
            if (timeout is not None and now - started >= timeout) or (idle is not None and now - last_record >= idle):
                break
            limit = self.max_records if count is None else min(self.max_records, count - consumed)
            batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=limit)
            records = [r for partition in batch.values() for r in partition]
            if not records:
                continue
            await self.process(records)
            consumed += len(records)
            last_record = time.monotonic()
            if count is not None and consumed >= count:
                break
        return consumed

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decode, dead-letter the undecodable, hand the rest over, then commit."""
        batch: list[Received] = []
        for record in records:
            CONSUMED.labels(self.service, record.topic).inc()
            try:
                event = self.codec.decode(
                    record.value, topic=record.topic, partition=record.partition, offset=record.offset
                )
            except SerializationError as exc:
                if self.on_poison is not None:
                    await self.on_poison(record, exc)
                else:
                    await self.dead_letter(record, DeadLetterReason.UNDECODABLE, str(exc))
                continue
            batch.append(received(event, record))
        if batch:
            await self.handler(batch)
        if self.on_offsets is not None:
            await self.on_offsets(_next_offsets(records))
        if self.commit:
            await self.consumer.commit(_next_offsets(records))
        self._record_lag(records)

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: DeadLetterReason, error: str) -> None:
        """Publish `record` to job-dlq and wait for the acknowledgement; never drop it silently."""
        if self.dead_letters is None:
            raise SerializationError(f"{error}; and no dead-letter producer is configured")
        await self.dead_letters.publish(dead_letter_for(record, self.service, reason, error), key=record.key)
        DEAD_LETTERED.labels(self.service, reason.value).inc()
        log.warning(
            "record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason.value,
            error=error,
        )

    def _record_lag(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for tp, offset in _next_offsets(records).items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, highwater - offset))


def _next_offsets(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets
