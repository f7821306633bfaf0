"""The consumer thread: fetches job-requested and runs the rebalance callbacks, handing both to the loop.

librdkafka's `consume()` blocks, and the rebalance callbacks run inside it, so they live on a
thread of their own, which owns the consumer: a call on it from another thread while `consume()`
runs blocks (measured: `pause()` and `consumer_group_metadata()` never returned), so pauses and
resumes are queued for this thread, and the group metadata that transactions need is refreshed
here after every fetch and rebalance. Each fetched batch is decoded and admitted on the event loop before the
next fetch (so a pause decided there applies to the next fetch); an assignment is taken over
(ledgers, history) on this thread, then handed to the engine; a revocation waits until the engine
has drained and committed the partitions, as the group protocol requires before they move.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from aiokafka import ConsumerRecord
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.loop import Received, received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import CONSUMED
from jobrelay.processor.assignment import Takeover, read_history, restore_ledgers
from jobrelay.processor.seen import SeenIndex

__all__ = ["Fetcher", "Sink", "drain", "to_record"]

log = get_logger(__name__)
T = TypeVar("T")


class Sink(Protocol):
    """What the fetcher hands its work to (the engine)."""

    async def handle(self, batch: Sequence[Received]) -> None:
        """Admit decoded records."""

    async def on_poison(self, record: ConsumerRecord[bytes, bytes], error: SerializationError) -> None:
        """Dead-letter an undecodable record."""

    async def assigned(self, takeovers: Sequence[Takeover]) -> None:
        """Start working on newly owned partitions."""

    async def revoked(self, partitions: Sequence[int], grace: float) -> None:
        """Drain and commit partitions that move away."""

    async def lost(self, partitions: Sequence[int]) -> None:
        """Drop partitions another owner already has."""

    def fail(self, exc: BaseException) -> None:
        """Something the processor cannot recover from."""


def drain(consumer: Consumer, limit: int, timeout: float) -> list[Message]:
    """Up to `limit` messages: waits at most `timeout` for the first, then takes what is already there.

    (`consume(limit, timeout)` alone waits out the whole timeout unless `limit` messages came: ~`timeout`
    of added latency per batch at light load.)
    """
    first = consumer.poll(timeout)
    return [first, *consumer.consume(limit - 1, 0)] if first is not None else []


def to_record(message: Message) -> ConsumerRecord[bytes, bytes]:
    """The message as a ConsumerRecord (what dead letters are built from)."""
    key, value = message.key(), message.value() or b""
    return ConsumerRecord(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp=message.timestamp()[1],
        timestamp_type=message.timestamp()[0],
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key) if key else -1,
        serialized_value_size=len(value),
        headers=tuple(message.headers() or ()),
    )


class Fetcher:
    """Runs the group consumer on its own thread until stopped."""

    def __init__(
        self,
        consumer: Consumer,
        reader: Consumer,
        codec: AvroCodec,
        seen: SeenIndex,
        *,
        topic: str,
        history_topic: str,
        rebalance_grace_s: float,
        timeout_s: float,
    ) -> None:
        self.consumer, self.reader, self.codec, self.seen = consumer, reader, codec, seen
        self._sink: Sink | None = None
        self.topic, self.history_topic = topic, history_topic
        self.rebalance_grace_s, self.timeout_s = rebalance_grace_s, timeout_s
        self._consumed = CONSUMED.labels("processor", topic)
        self.group_metadata: object | None = None  # the latest, for send_offsets_to_transaction
        self._commands: queue.SimpleQueue[Callable[[Consumer], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def sink(self) -> Sink:
        """Where fetched records and rebalances go (set by `start`)."""
        assert self._sink is not None  # noqa: S101 - set by start()
        return self._sink

    def start(self, sink: Sink) -> None:
        """Subscribe and start fetching on the consumer thread, handing everything to `sink`."""
        self._loop, self._sink = asyncio.get_running_loop(), sink
        self.consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._thread = threading.Thread(target=self._run, name="processor-consumer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop fetching (the batch in hand is admitted first) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching `partitions` (applied before the next fetch)."""
        self._commands.put(lambda consumer: consumer.pause(partitions))

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Fetch `partitions` again (applied before the next fetch, within one poll interval)."""
        self._commands.put(lambda consumer: consumer.resume(partitions))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                while not self._commands.empty():
                    self._commands.get_nowait()(self.consumer)
                messages = drain(self.consumer, 500, 0.05)
                self.group_metadata = self.consumer.consumer_group_metadata()
                if messages:
                    self._call(self._deliver(messages))
        except BaseException as exc:  # noqa: BLE001 - the engine decides; the thread must not die silently
            if not self._stop.is_set():
                self._report(exc)

    async def _deliver(self, messages: list[Message]) -> None:
        batch: list[Received] = []
        self._consumed.inc(len(messages))
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", error=str(error))
                continue
            record = to_record(message)
            try:
                event = self.codec.decode(
                    record.value or b"", topic=record.topic, partition=record.partition, offset=record.offset
                )
            except SerializationError as exc:
                await self.sink.on_poison(record, exc)
                continue
            batch.append(received(event, record))
        if batch:
            await self.sink.handle(batch)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.group_metadata = consumer.consumer_group_metadata()
        try:
            ours = [tp for tp in partitions if tp.topic == self.topic]
            started, takeovers, known = time.monotonic(), [], 0
            if ours:
                takeovers = restore_ledgers(consumer, ours, self.timeout_s)
                since = int((time.time() - self.seen.window_s) * 1000)
                known = read_history(self.reader, self.codec, self.history_topic, [tp.partition for tp in ours],
                                     since_ms=since, remember=self.seen.put)  # fmt: skip
            self._call(self.sink.assigned(takeovers))  # also when empty: the engine has joined the group
            if ours:
                log.info("partitions taken over", partitions=[tp.partition for tp in ours], known_jobs=known,
                         seconds=round(time.monotonic() - started, 3))  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - a half-owned partition must stop us
            self._report(exc)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.group_metadata = consumer.consumer_group_metadata()
        ours = [tp.partition for tp in partitions if tp.topic == self.topic]
        if ours:
            try:
                self._call(self.sink.revoked(ours, self.rebalance_grace_s))
            except BaseException as exc:  # noqa: BLE001
                self._report(exc)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ours = [tp.partition for tp in partitions if tp.topic == self.topic]
        log.warning("partitions lost", partitions=ours)
        if ours:
            self._call(self.sink.lost(ours))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None  # noqa: S101 - set by start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _report(self, exc: BaseException) -> None:
        assert self._loop is not None  # noqa: S101 - set by start()
        self._loop.call_soon_threadsafe(self.sink.fail, exc)
