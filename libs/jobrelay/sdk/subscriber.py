"""`Subscriber`: a downstream consumer of job-completed (and, if asked, job-progress).

Built on the shared consumer loop (aiokafka): a consumer group of the user's naming,
`read_committed` (only outcomes of committed processor transactions are seen), Avro decoded into
the same event classes the services use (`JobCompleted`, `JobProgress`), filtered by job type and
status. Delivery is at least once: the handler is called once per record, in offset order per
partition, and a batch's offsets (at most `max_records` records) are committed only after the
handler returned for every record of it. A crash re-delivers at most the batch in hand
(`max_records=1` commits after every record). A handler that raises stops the subscriber, with
the offsets of the records handled before it committed; the failed record comes again on restart.

Records that cannot be decoded (poison) are logged with their topic, partition and offset, handed
to `on_poison`, and committed past: a partition never gets stuck. Handlers may be plain functions
(run in a worker thread, so a slow one does not starve the group heartbeat) or coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobProgress, TerminalStatus
from jobrelay.messaging.clients import make_codec, make_consumer, topic_partitions
from jobrelay.messaging.codec import SerializationError
from jobrelay.messaging.headers import header
from jobrelay.messaging.loop import ConsumerLoop, Received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.tracing import consume_span

__all__ = ["Delivered", "EventFilter", "Handler", "Poison", "PoisonCallback", "Subscriber"]

log = get_logger(__name__)
SERVICE = "subscriber"


@dataclass(frozen=True, slots=True)
class Delivered:
    """An event for the handler, with where it came from (`event` is a JobProgress only with `progress=True`)."""

    event: JobCompleted | JobProgress
    topic: str
    partition: int
    offset: int
    key: bytes | None  # the job id
    headers: tuple[tuple[str, bytes], ...]  # CloudEvents ce_*, content-type, traceparent
    timestamp_ms: int

    @property
    def job_id(self) -> str:
        """The job the event is about."""
        return self.event.job_id

    def header(self, key: str) -> str | None:
        """The first value of header `key` as text, or None."""
        return header(self.headers, key)


Handler = Callable[[Delivered], Awaitable[None] | None]
"""Called with each event that passes the filter; a plain function or a coroutine function."""


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that could not be read as a jobrelay event; it was skipped."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str


PoisonCallback = Callable[[Poison], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events reach the handler: job types (exact or fnmatch patterns) and terminal statuses.

    Empty means everything. Statuses apply to completions; progress events pass on type alone.
    """

    types: tuple[str, ...] = ()
    statuses: frozenset[TerminalStatus] = frozenset()

    @classmethod
    def of(cls, types: Collection[str] = (), statuses: Collection[str | TerminalStatus] = ()) -> EventFilter:
        """A filter from names as a user types them (statuses case-insensitive; ValueError if unknown)."""
        return cls(tuple(types), frozenset(TerminalStatus(str(s).upper()) for s in statuses))

    def accepts(self, event: JobCompleted | JobProgress) -> bool:
        """Whether `event` should reach the handler."""
        if self.types and not any(fnmatchcase(event.job_type, pattern) for pattern in self.types):
            return False
        return not (self.statuses and isinstance(event, JobCompleted) and event.status not in self.statuses)


class Subscriber:
    """Consumes jobrelay's outcomes (and progress) with a consumer group; see the module doc."""

    def __init__(
        self,
        handler: Handler,
        *,
        group_id: str | None,
        types: Collection[str] = (),
        statuses: Collection[str | TerminalStatus] = (),
        progress: bool = False,
        from_beginning: bool = True,
        on_poison: PoisonCallback | None = None,
        max_records: int = 100,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
    ) -> None:
        """`group_id=None` reads every partition without a group and commits nothing.

        `from_beginning` applies where the group has no committed offset yet (else: only new events).
        """
        self.handler, self.group_id, self.on_poison = handler, group_id, on_poison
        self.filter = EventFilter.of(types, statuses)
        self.from_beginning, self.max_records = from_beginning, max_records
        self.kafka, topic_names = kafka or KafkaSettings(), topics or TopicSettings()
        self.topics = [topic_names.completed] + ([topic_names.progress] if progress else [])
        self._sync = not _is_async(handler)
        self._loop: ConsumerLoop | None = None
        self._stop_requested = False
        self._consumer: AIOKafkaConsumer | None = None
        self._batch_lock = asyncio.Lock()

    def stop(self) -> None:
        """Return from `run`/`run_async` after the batch in hand is handled and committed."""
        self._stop_requested = True
        if self._loop is not None:
            self._loop.stop()

    def run(self, *, count: int | None = None, timeout: float | None = None, idle: float | None = None) -> int:
        """Blocking `run_async`, stopped gracefully by SIGTERM or Ctrl+C (SIGINT)."""

        async def main() -> int:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            return await self.run_async(count=count, timeout=timeout, idle=idle)

        return asyncio.run(main())

    async def run_async(
        self, *, count: int | None = None, timeout: float | None = None, idle: float | None = None
    ) -> int:
        """Consume until `stop()`; or after `count` records, `timeout` seconds or `idle` quiet seconds.

        Returns how many records were read (filtered-out and poison ones included).
        """
        consumer = make_consumer(
            self.kafka,
            SERVICE,
            group_id=self.group_id,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
        )
        await consumer.start()
        try:
            await self._attach(consumer)
            self._consumer = consumer
            self._loop = _OneBatchAtATime(
                self._batch_lock,
                consumer,
                make_codec(self.kafka),
                self._handle,
                service=SERVICE,
                dead_letters=None,
                commit=False,  # committed in _commit, which tolerates a rebalance that took the partitions
                max_records=self.max_records,
                on_offsets=self._commit,
                on_poison=self._poison,
            )
            if self._stop_requested:
                return 0
            return await self._loop.run(count=count, timeout=timeout, idle=idle)
        finally:
            self._loop = None
            await consumer.stop()

    async def _attach(self, consumer: AIOKafkaConsumer) -> None:
        if self.group_id is not None:
            consumer.subscribe(self.topics, listener=_FinishBatchFirst(self._batch_lock))
            return
        partitions = [tp for topic in self.topics for tp in await topic_partitions(consumer, topic)]
        consumer.assign(partitions)
        if self.from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)

    async def _handle(self, batch: Sequence[Received]) -> None:
        """Hand every accepted event to the user's handler; on an error commit the records before it."""
        handled: list[Delivered] = []
        wanted = self._select(batch)
        try:
            if self._sync:
                await asyncio.to_thread(self._call_sync, wanted, handled)
            else:
                for item in wanted:
                    with consume_span(item.topic, item.partition, item.offset, item.job_id, item.headers):
                        await self.handler(item)  # type: ignore[misc]
                    handled.append(item)
        except BaseException:
            await self._commit_before(batch, handled, wanted)
            raise

    def _call_sync(self, items: Sequence[Delivered], handled: list[Delivered]) -> None:
        for item in items:
            with consume_span(item.topic, item.partition, item.offset, item.job_id, item.headers):
                self.handler(item)
            handled.append(item)

    def _select(self, batch: Sequence[Received]) -> list[Delivered]:
        return [
            Delivered(event, item.topic, item.partition, item.offset, item.key, item.headers, item.timestamp_ms)
            for item in batch
            # another kind of event on these topics is not the handler's business
            if isinstance(event := item.event, JobCompleted | JobProgress) and self.filter.accepts(event)
        ]

    async def _commit_before(
        self, batch: Sequence[Received], handled: Sequence[Delivered], wanted: Sequence[Delivered]
    ) -> None:
        """Commit, per partition, up to the first record whose handling did not finish."""
        done = {id(item) for item in handled}
        first_unhandled: dict[TopicPartition, int] = {}
        for item in wanted:
            if id(item) not in done:
                first_unhandled.setdefault(TopicPartition(item.topic, item.partition), item.offset)
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            if record.offset < first_unhandled.get(tp, record.offset + 1):
                offsets[tp] = record.offset + 1
        with contextlib.suppress(Exception):  # the handler's error is the one to report
            await self._commit(offsets)

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit after the handler returned; a rebalance that moved the partitions means re-delivery."""
        if self.group_id is None or self._consumer is None or not offsets:
            return
        try:
            await self._consumer.commit(dict(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offsets not committed: partitions moved in a rebalance", error=str(exc))

    async def _poison(self, record: ConsumerRecord[bytes, bytes], error: SerializationError) -> None:
        poison = Poison(record.topic, record.partition, record.offset, record.key, record.value, str(error))
        log.warning(
            "undecodable record skipped",
            topic=poison.topic,
            partition=poison.partition,
            offset=poison.offset,
            error=poison.error,
        )
        if self.on_poison is not None:
            outcome = self.on_poison(poison)
            if inspect.isawaitable(outcome):
                await outcome


class _OneBatchAtATime(ConsumerLoop):
    """The shared loop, holding `lock` while a batch is decoded, handled and committed."""

    def __init__(self, lock: asyncio.Lock, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = lock

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Handle and commit one batch; a rebalance waits for it (see `_FinishBatchFirst`)."""
        async with self.lock:
            await super().process(records)


class _FinishBatchFirst(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the batch in hand finish and commit before partitions are given up, so a rebalance
    re-delivers nothing that was handled."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Wait for the batch being handled (its commit included)."""
        async with self.lock:
            return

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Nothing to do: the group's committed offsets are where to resume."""


def _is_async(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
