"""The rebuild's fast path: every partition from its start to the end offsets taken when it began.

One librdkafka consumer (read_committed, no group) is assigned every partition of the four
topics; records are decoded and folded in memory, job by job, and each job's row is written once
at the end (or when `max_jobs` jobs are held, in chunks: a later event of a job already written
is folded onto its stored row at the next write). Positions are the next offset after the last
record read of each partition, as the live projector stores them, and are written with the rows.
Undecodable records are skipped, as in any rebuild: the live projector dead-lettered them already.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, Message, TopicPartition
from confluent_kafka.admin import OffsetSpec

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event
from jobrelay.jobs.state import JobState, evolve
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.confluent import consumer_config
from jobrelay.messaging.topics import admin_client
from jobrelay.observability.logging import get_logger
from jobrelay.projector.apply import EVENTS_IGNORED
from jobrelay.projector.feed import SKIPPED
from jobrelay.projector.store.base import Fold, Loaded, Position
from jobrelay.projector.store.rows import JobRow

__all__ = ["Folder", "Replay", "end_offsets", "fold_onto", "open_consumer", "read_batch", "replay"]

log = get_logger(__name__)
Writer = Callable[[list[str], Fold, Mapping[Position, int]], object]
"""Stores `fold(load(job_ids))` with the positions in one transaction (`SqliteStore.update_now`)."""


def end_offsets(kafka: KafkaSettings, topics: TopicSettings, timeout: float = 30.0) -> dict[Position, int]:
    """The last stable offset (what read_committed readers can reach) of every partition of the four topics."""
    admin = admin_client(kafka)
    metadata = admin.list_topics(timeout=timeout)
    found = [TopicPartition(t, p) for t in topics.all() if t in metadata.topics for p in metadata.topics[t].partitions]
    if not found:
        raise RuntimeError(f"none of the topics {', '.join(topics.all())} exists: run `jobrelay topics ensure`")
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    futures = admin.list_offsets(
        dict.fromkeys(found, latest), isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
    )
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


def fold_onto(before: JobRow | None, events: Sequence[Event], requested_topic: str) -> JobRow:
    """`before`'s row with `events` applied (a new row when there is none)."""
    state = evolve(before.state if before is not None else None, events[0], requested_topic=requested_topic)
    for event in events[1:]:
        state = evolve(state, event, requested_topic=requested_topic)
    if before is None:
        return JobRow(state, 1, len(events))
    return JobRow(state, before.version + (state != before.state), before.applied + len(events))


@dataclass
class Folder:
    """Jobs folded in memory; what was written already is folded onto its stored row at the next write.

    With `owns`, only the jobs it accepts are folded; the events of others are kept as `strays`.
    """

    requested_topic: str
    owns: Callable[[str], bool] | None = None
    states: dict[str, JobState] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    later: dict[str, list[Event]] = field(default_factory=dict)  # events of jobs already written
    strays: list[Event] = field(default_factory=list)

    def add(self, event: Event) -> None:
        """Fold one event into its job (an event without a job id is counted and left out)."""
        job_id = event.job_id
        if job_id is None:
            EVENTS_IGNORED.labels("no_job_id").inc()
        elif self.owns is not None and not self.owns(job_id):
            self.strays.append(event)
        elif job_id in self.written:
            self.later.setdefault(job_id, []).append(event)
        else:
            self.states[job_id] = evolve(self.states.get(job_id), event, requested_topic=self.requested_topic)
            self.applied[job_id] = self.applied.get(job_id, 0) + 1

    @property
    def held(self) -> int:
        """Jobs held in memory."""
        return len(self.states) + len(self.later)

    def fresh_rows(self) -> list[JobRow]:
        """The rows of the held jobs never written before."""
        return [JobRow(state, 1, self.applied[job_id]) for job_id, state in self.states.items()]

    def rows(self, loaded: Loaded) -> list[JobRow]:
        """Every held job's row (the Fold of a write; `loaded` has the rows of the jobs written before)."""
        later = [fold_onto(loaded.rows.get(i), events, self.requested_topic) for i, events in self.later.items()]
        return self.fresh_rows() + later

    def written_out(self) -> None:
        """Forget the held jobs once they are stored."""
        self.written.update(self.states)
        self.states, self.applied, self.later = {}, {}, {}


@dataclass
class Replay:
    """Where a replay is: the next offset of every partition read, and what is left to read."""

    ends: dict[Position, int]
    positions: dict[Position, int] = field(default_factory=dict)
    records: int = 0
    skipped: int = 0  # undecodable

    def __post_init__(self) -> None:
        self.open = {tp for tp, end in self.ends.items() if end > 0}

    def done(self, topic: str, partition: int) -> None:
        """The partition reached its end offset (or the end of what it holds)."""
        self.open.discard((topic, partition))


def replay(
    kafka: KafkaSettings, topics: TopicSettings, codec: AvroCodec, write: Writer, *, max_jobs: int, batch: int
) -> Replay:
    """Read and fold every partition up to its end offset now, writing through `write`; blocking."""
    state = Replay(end_offsets(kafka, topics))
    folder = Folder(topics.requested)
    consumer = open_consumer(kafka, state.open)
    try:
        while state.open:
            messages = consumer.consume(num_messages=batch, timeout=0.5)
            read_batch(messages, state, folder, codec, consumer)
            if folder.held >= max_jobs:
                _write(folder, state, write)
        _write(folder, state, write)
    finally:
        consumer.close()
    return state


def open_consumer(kafka: KafkaSettings, partitions: Iterable[Position]) -> Consumer:
    """A librdkafka consumer assigned `partitions` from their first offset."""
    # A group id librdkafka insists on; never joined (assign), never committed to.
    options = {"group.id": f"jobrelay-rebuild-{uuid.uuid4()}", "enable.partition.eof": True}
    consumer = Consumer(consumer_config(kafka, "projector-rebuild", **options))
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic, partition in partitions])
    return consumer


def read_batch(
    messages: list[Message],
    state: Replay,
    folder: Folder,
    codec: AvroCodec,
    consumer: Consumer,
    mine: Callable[[bytes | None], bool] | None = None,
) -> None:
    """Decode and fold a consumed batch; with `mine`, only the records whose key it accepts."""
    ends, positions = state.ends, state.positions
    for message in messages:
        # A message from consume() always names its partition (the Nones are for produced ones).
        topic, partition, error = cast(str, message.topic()), cast(int, message.partition()), message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"the rebuild's consumer failed: {error}")
            state.done(topic, partition)  # at the end of what read_committed readers can see
            continue
        offset, where = cast(int, message.offset()), (topic, partition)
        if offset >= ends[where]:  # written after the rebuild began: the live projector reads it
            state.done(topic, partition)
            consumer.pause([TopicPartition(topic, partition)])
            continue
        state.records += 1
        positions[where] = offset + 1
        if offset + 1 >= ends[where]:
            state.done(topic, partition)
        if mine is not None and not mine(message.key()):
            continue  # another worker decodes and folds it
        try:
            folder.add(codec.decode(message.value(), topic=topic, partition=partition, offset=offset))
        except SerializationError:
            state.skipped += 1
            SKIPPED.inc()
            log.warning("undecodable record skipped", topic=topic, partition=partition, offset=offset)


def _write(folder: Folder, state: Replay, write: Writer) -> None:
    started = time.perf_counter()
    held = folder.held
    write(list(folder.later), folder.rows, dict(state.positions))
    folder.written_out()
    log.info("rebuild wrote a chunk", jobs=held, records=state.records, seconds=round(time.perf_counter() - started, 3))
