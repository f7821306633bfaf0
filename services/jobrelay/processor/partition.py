"""One owned input partition: its ledger, its jobs, and the transactions that publish their events.

Fencing: every partition of job-requested has its own transactional producer, with the
transactional id `<prefix>.<group>.<topic>.<partition>`. aiokafka has no KIP-447
(`consumer_group_metadata`) fencing, and confluent-kafka, which has it, is synchronous; so when a
partition moves, its new owner's `InitProducerId` for that id fences the old owner's producer
(a zombie's late commit fails with ProducerFenced) and aborts the old owner's open transaction
before the new owner reads the committed offset. One producer per partition costs a connection
each, which is fine for the partition counts jobrelay uses (12 by default).

Batching: events are encoded (and their trace headers taken) when a job emits them, then written
by one flusher task per partition into one transaction together with the partition's offset and
ledger metadata. By default (`linger` 0) this is group commit: a transaction starts as soon as
there is something to write and the previous one has ended, and carries everything that came
meanwhile, so batches grow with the load and an idle partition commits at once (a fixed 50 ms
linger cost a no-op job ~200 ms end to end, as each job takes two transactions). A job only runs its
handler once its STARTED event is committed, so a crash re-run always knows the attempt it
replaces. Progress and heartbeats go through the same transactions, so read_committed readers
see them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from jobrelay.config.settings import TopicSettings
from jobrelay.jobs.events import Event
from jobrelay.messaging.clients import topic_for
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import event_headers
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import PRODUCED
from jobrelay.observability.tracing import KafkaHeaders, produce_span
from jobrelay.processor.ledger import Attempted, Ledger
from jobrelay.processor.metrics import TRANSACTION_SECONDS, TRANSACTIONS

__all__ = ["Output", "PartitionWorker"]

log = get_logger(__name__)
SOURCE = "/jobrelay/processor"
_COMMIT_TRIES = 3


@dataclass(frozen=True, slots=True)
class Output:
    """An encoded event waiting for the next transaction."""

    topic: str
    key: bytes | None
    value: bytes
    headers: KafkaHeaders


class PartitionWorker:
    """Owns one partition of job-requested until it is revoked or the process stops."""

    def __init__(
        self,
        tp: TopicPartition,
        producer: AIOKafkaProducer,
        codec: AvroCodec,
        topics: TopicSettings,
        *,
        group_id: str,
        ledger: Ledger,
        seen: dict[str, str],
        linger: float,
        on_change: Callable[[], None],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.tp, self.producer, self.codec, self.topics = tp, producer, codec, topics
        self.group_id, self.ledger, self.linger = group_id, ledger, linger
        self.seen = seen  # job id -> request hash of every job known here (finished or not)
        self.on_change, self.on_fatal = on_change, on_fatal
        self.closing = False
        self.running: set[asyncio.Task[Any]] = set()  # jobs past their start: waited for on close
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outputs: list[Output] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._dirty, self._wake, self._stopping = False, asyncio.Event(), False
        self._failed: BaseException | None = None
        self._flusher = asyncio.create_task(self._flush_forever(), name=f"flush-{tp.topic}-{tp.partition}")

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run a job's coroutine as a task this worker tracks (and cancels when it closes)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def emit(self, *events: Event) -> None:
        """Queue events for the next transaction (trace headers from the current context)."""
        for event in events:
            topic = topic_for(event, self.topics)
            with produce_span(topic, event.job_id):
                headers = event_headers(event, SOURCE)
            key = event.job_id.encode() if event.job_id else None
            self._outputs.append(Output(topic, key, self.codec.encode(event), headers))
        self._touch()

    async def start(self, offset: int, attempt: int, started: Event) -> None:
        """Record the start of `attempt` and return once it is committed."""
        self.ledger.attempted(offset, Attempted(attempt))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.emit(started)
        await waiter

    def retry_later(self, offset: int, attempt: int, retry_at_ms: int, scheduled: Event) -> None:
        """Record that `attempt` failed and the next one is due at `retry_at_ms`."""
        self.ledger.attempted(offset, Attempted(attempt, retry_at_ms))
        self.emit(scheduled)

    def finish(self, offset: int, *events: Event) -> None:
        """The job at `offset` is over: its events and the offset go out in the same transaction."""
        self.ledger.finish(offset)
        self.emit(*events)
        self.on_change()

    def skip(self, offset: int) -> None:
        """Nothing to do for `offset` (finished before, or a duplicate): let the commit pass it."""
        self.ledger.finish(offset)
        self._touch()

    def _touch(self) -> None:
        self._dirty = True
        self._wake.set()

    async def _flush_forever(self) -> None:
        try:
            while not self._stopping:
                await self._wake.wait()
                if self.linger and not self._stopping:
                    await asyncio.sleep(self.linger)  # gather more outputs into this transaction
                self._wake.clear()
                await self.flush()
        except Exception as exc:  # noqa: BLE001 - the owner decides; jobs must not wait forever
            self._fail(exc)

    async def flush(self) -> None:
        """Commit everything accumulated since the last transaction, with the offset and ledger."""
        if self._failed is not None:
            raise self._failed
        if not self._dirty:
            return
        outputs, waiters = self._outputs, self._waiters
        self._outputs, self._waiters, self._dirty = [], [], False
        offset, metadata = self.ledger.commit_point(), self.ledger.metadata()
        try:
            with TRANSACTION_SECONDS.time():
                await self._commit(outputs, offset, metadata)
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _commit(self, outputs: list[Output], offset: int, metadata: str) -> None:
        for attempt in range(1, _COMMIT_TRIES + 1):
            try:
                await self._transaction(outputs, offset, metadata)
            except ProducerFenced:
                TRANSACTIONS.labels("fenced").inc()
                raise
            except KafkaError as exc:
                TRANSACTIONS.labels("retried").inc()
                log.warning("transaction failed", partition=self.tp.partition, attempt=attempt, error=repr(exc))
                if attempt == _COMMIT_TRIES:
                    raise
                await self._abort_quietly()
                await asyncio.sleep(0.2 * attempt)  # let a leader election or coordinator move settle
            else:
                TRANSACTIONS.labels("committed").inc()
                for output in outputs:
                    PRODUCED.labels("processor", output.topic).inc()
                return

    async def _transaction(self, outputs: list[Output], offset: int, metadata: str) -> None:
        async with self.producer.transaction():
            for output in outputs:
                await self.producer.send(output.topic, output.value, key=output.key, headers=output.headers)
            await self.producer.send_offsets_to_transaction({self.tp: (offset, metadata)}, self.group_id)

    async def _abort_quietly(self) -> None:
        try:
            await self.producer.abort_transaction()
        except Exception as exc:  # noqa: BLE001 - already failed; the retry says whether the producer is usable
            log.debug("abort after a failed transaction failed too", error=repr(exc))

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        self._waiters.clear()
        self.on_fatal(exc)

    async def close(self, grace: float) -> int:
        """Stop taking jobs, give running ones `grace` seconds, commit, stop; returns how many were cut off."""
        self.closing = True
        for task in self._tasks - self.running:
            task.cancel()  # queued or waiting for a retry: the ledger already says where they stand
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace)
        cut_off = len(self.running)
        for task in set(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._stopping = True
        self._wake.set()
        await asyncio.gather(self._flusher, return_exceptions=True)
        try:
            if self._failed is None:
                await self.flush()
        finally:
            await self.producer.stop()
        return cut_off
