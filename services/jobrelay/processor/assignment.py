"""Taking over partitions: restore their ledgers from the committed offsets, remember their jobs.

Runs in the consumer's rebalance callback, for every newly assigned partition at once. The
committed offsets are read as stable offsets (read_committed: librdkafka waits while a previous
owner's transaction that commits offsets for them is still open), so the ledger in their metadata
is the last committed word; then the co-partitioned job-completed partitions are read up to their
last stable offset, so every job the previous owner finished is known before a record runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from jobrelay.jobs.events import JobCompleted
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.processor.ledger import Ledger

__all__ = ["Takeover", "read_history", "restore_ledgers"]

_HISTORY_DEADLINE_S = 120.0


@dataclass(frozen=True, slots=True)
class Takeover:
    """A newly owned partition and its restored ledger."""

    tp: TopicPartition
    ledger: Ledger


def restore_ledgers(consumer: Consumer, partitions: Sequence[TopicPartition], timeout: float) -> list[Takeover]:
    """Each partition's ledger, from its committed offset and metadata (or its first offset when none)."""
    committed = consumer.committed(list(partitions), timeout=timeout)
    takeovers = []
    for tp in committed:
        if tp.offset < 0:
            low, _ = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            ledger = Ledger(max(0, low))
        else:
            ledger = Ledger.restore(tp.offset, tp.metadata or "")
        takeovers.append(Takeover(TopicPartition(tp.topic, tp.partition), ledger))
    return takeovers


def read_history(
    reader: Consumer,
    codec: AvroCodec,
    topic: str,
    partitions: Sequence[int],
    *,
    since_ms: int,
    remember: Callable[[str, str, int], None],
) -> int:
    """Call `remember(job_id, request_hash, at_ms)` for every job completed on `partitions` since `since_ms`."""
    starts = reader.offsets_for_times([TopicPartition(topic, p, max(0, since_ms)) for p in partitions], timeout=30)
    todo = [tp for tp in starts if tp.offset >= 0]
    if not todo:
        return 0
    reader.assign(todo)
    remaining, count = {tp.partition for tp in todo}, 0
    deadline = time.monotonic() + _HISTORY_DEADLINE_S
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} partitions {sorted(remaining)} took too long")
            first = reader.poll(0.2)
            for message in [first, *reader.consume(999, 0)] if first is not None else []:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                    continue
                count += _remember(codec, message.value(), remember)
    finally:
        reader.unassign()
    return count


def _remember(codec: AvroCodec, value: bytes | None, remember: Callable[[str, str, int], None]) -> int:
    try:
        event = codec.decode(value or b"")
    except SerializationError:
        return 0  # not ours to judge here: job-completed's own readers dead-letter it
    if not isinstance(event, JobCompleted):
        return 0
    remember(event.job_id, event.request_hash, int(event.occurred_at.timestamp() * 1000))
    return 1
