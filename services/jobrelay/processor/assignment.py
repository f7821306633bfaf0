"""Taking over a partition: fence its previous owner, restore its ledger, remember its jobs.

The order matters: the new owner's transactional producer is initialised first, which fences the
previous owner and aborts its open transaction; only then are the committed offset (with the
ledger in its metadata) and the co-partitioned job-completed partition read, so neither can change
under the new owner's feet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted
from jobrelay.messaging.clients import make_producer
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.processor.ledger import Ledger
from jobrelay.processor.settings import ProcessorSettings

__all__ = ["Takeover", "read_seen", "take_over", "transactional_id"]

_HISTORY_DEADLINE_S = 120.0


@dataclass(frozen=True, slots=True)
class Takeover:
    """What a new owner of a partition starts from."""

    producer: AIOKafkaProducer
    ledger: Ledger
    seen: dict[str, str]


def transactional_id(settings: ProcessorSettings, tp: TopicPartition) -> str:
    """The partition's transactional id: stable across processes, unique per group and partition."""
    return f"{settings.transactional_id_prefix}.{settings.group_id}.{tp.topic}.{tp.partition}"


async def take_over(
    tp: TopicPartition,
    *,
    kafka: KafkaSettings,
    settings: ProcessorSettings,
    topics: TopicSettings,
    codec: AvroCodec,
    admin: AIOKafkaAdminClient,
    reader: AIOKafkaConsumer,
    consumer: AIOKafkaConsumer,
) -> Takeover:
    """Fence, restore and position the group consumer at the partition's committed offset."""
    producer = make_producer(kafka, f"processor-{tp.partition}", transactional_id=transactional_id(settings, tp))
    await producer.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.group_id, partitions=[tp])
        committed = offsets.get(tp)
        if committed is None or committed.offset < 0:
            ledger = Ledger((await consumer.beginning_offsets([tp]))[tp])
        else:
            ledger = Ledger.restore(committed.offset, committed.metadata or "")
        completed = TopicPartition(topics.completed, tp.partition)
        seen = await read_seen(reader, codec, completed, since_ms=int((time.time() - settings.dedupe_window_s) * 1000))
    except BaseException:
        await producer.stop()
        raise
    consumer.seek(tp, ledger.commit_point())
    return Takeover(producer, ledger, seen)


async def read_seen(reader: AIOKafkaConsumer, codec: AvroCodec, tp: TopicPartition, *, since_ms: int) -> dict[str, str]:
    """Job id -> request hash of every job completed on `tp` since `since_ms` (read_committed)."""
    reader.assign([tp])
    start = (await reader.offsets_for_times({tp: max(0, since_ms)}))[tp]
    end = (await reader.end_offsets([tp]))[tp]
    if start is None or start.offset >= end:
        return {}
    reader.seek(tp, start.offset)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + _HISTORY_DEADLINE_S
    while await reader.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] up to offset {end} took too long")
        for record in (await reader.getmany(tp, timeout_ms=200)).get(tp, []):
            try:
                event = codec.decode(record.value)
            except SerializationError:
                continue  # not ours to judge here: job-completed's own readers dead-letter it
            if isinstance(event, JobCompleted):
                seen[event.job_id] = event.request_hash
    return seen
