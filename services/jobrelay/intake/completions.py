"""The intake's view of job-completed, for `Prefer: wait=N` on `POST /v1/jobs` (sync-if-fast).

Every intake replica reads every partition of job-completed itself (read_committed, manual
assignment, no consumer group, from the end at start-up): a job's outcome reaches whichever
replica its request came through. A request registers its waiter before its record is
published, so its outcome cannot slip past it.

Records are keyed by the job id, so the watch decodes only the outcomes somebody waits for; the
others are kept as bytes in a bounded memory of recent outcomes (count and bytes), so that a
replay of a job that ended meanwhile answers at once. An outcome older than this replica or
past that memory is not known here: such a request waits its N seconds and gets the 202.
The watch does not use the shared consumer loop because that loop decodes every record, and
the watch shares its event loop with the 202 path. Undecodable records are skipped (the
projector and the notifier dead-letter them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from jobrelay.config.settings import KafkaSettings
from jobrelay.jobs.events import JobCompleted
from jobrelay.messaging.clients import make_consumer, topic_partitions
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import CONSUMED

__all__ = ["Completions"]

log = get_logger(__name__)
SERVICE = "intake"
_MAX_BYTES = 64 * 1024 * 1024  # the recent outcomes' values, at most


class Completions:
    """Who waits for which job, and the outcomes read on job-completed (`running()` reads them)."""

    def __init__(self, kafka: KafkaSettings, topic: str, codec: AvroCodec, *, remember: int = 10_000) -> None:
        self.kafka, self.topic, self.codec, self.remember = kafka, topic, codec, remember
        self.watching = False  # positioned at the end of every partition: waits are safe from now on
        self._waiters: dict[str, list[asyncio.Future[JobCompleted]]] = {}
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Completions]:
        """Read job-completed in the background until the block exits."""
        task = asyncio.create_task(self._watch(), name="intake-completions")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.watching = False

    def expect(self, job_id: str) -> asyncio.Future[JobCompleted]:
        """A future of the job's outcome: done at once when it is among the recent ones."""
        future: asyncio.Future[JobCompleted] = asyncio.get_running_loop().create_future()
        known = self._known(job_id)
        if known is not None:
            future.set_result(known)
        else:
            self._waiters.setdefault(job_id, []).append(future)
        return future

    async def outcome(self, job_id: str, future: asyncio.Future[JobCompleted], timeout: float) -> JobCompleted | None:
        """The outcome `expect` promised, if it comes within `timeout` seconds; the waiter is gone after."""
        try:
            if not future.done() and timeout > 0:
                await asyncio.wait((future,), timeout=timeout)
            return future.result() if future.done() else None
        finally:
            self.forget(job_id, future)

    def forget(self, job_id: str, future: asyncio.Future[JobCompleted]) -> None:
        """Stop waiting (the request was refused, or its time is up)."""
        waiting = self._waiters.get(job_id)
        if waiting is None:
            return
        with contextlib.suppress(ValueError):
            waiting.remove(future)
        if not waiting:
            del self._waiters[job_id]

    def seen(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Take in records of job-completed: resolve their waiters, remember the rest."""
        for record in records:
            if record.key is None or record.value is None:
                continue
            job_id = record.key.decode("utf-8", "replace")
            self._keep(job_id, record.value)
            waiting = self._waiters.pop(job_id, None)
            if waiting is not None:
                self._resolve(job_id, record, waiting)

    def _resolve(
        self, job_id: str, record: ConsumerRecord[bytes, bytes], waiting: list[asyncio.Future[JobCompleted]]
    ) -> None:
        event = self._decode(record.value, record.partition, record.offset)
        if event is None:
            self._waiters[job_id] = waiting  # not an outcome after all: keep waiting
            return
        for future in waiting:
            if not future.done():
                future.set_result(event)

    def _known(self, job_id: str) -> JobCompleted | None:
        value = self._recent.get(job_id)
        return self._decode(value) if value is not None else None

    def _keep(self, job_id: str, value: bytes) -> None:
        previous = self._recent.pop(job_id, None)
        if previous is not None:
            self._recent_bytes -= len(previous)
        self._recent[job_id] = value
        self._recent_bytes += len(value)
        while self._recent and (len(self._recent) > self.remember or self._recent_bytes > _MAX_BYTES):
            _, dropped = self._recent.popitem(last=False)
            self._recent_bytes -= len(dropped)

    def _decode(
        self, value: bytes | None, partition: int | None = None, offset: int | None = None
    ) -> JobCompleted | None:
        try:
            event = self.codec.decode(value, topic=self.topic, partition=partition, offset=offset)
        except SerializationError as exc:
            log.warning(
                "undecodable outcome skipped", topic=self.topic, partition=partition, offset=offset, error=str(exc)
            )
            return None
        return event if isinstance(event, JobCompleted) else None

    async def _watch(self) -> None:
        delay = 0.5
        while True:  # a broker that is away (at start-up too): connect again, from the end
            try:
                await self._read_until_it_fails()
            except Exception as exc:  # noqa: BLE001 - whatever the client raises, the intake keeps serving
                log.warning("job-completed not read: Prefer: wait answers 202", error=repr(exc), retry_in_s=delay)
            delay = 0.5 if self.watching else delay  # it was reading: reconnect soon
            self.watching = False
            await asyncio.sleep(delay)  # backoff before reconnecting, not a wait for a condition
            delay = min(delay * 2, 10.0)

    async def _read_until_it_fails(self) -> None:
        consumer = make_consumer(self.kafka, "intake-completions", auto_offset_reset="latest")
        try:
            await consumer.start()
            await self._position(consumer)
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for records in batch.values():
                    CONSUMED.labels(SERVICE, self.topic).inc(len(records))
                    self.seen(records)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await topic_partitions(consumer, self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist: run `jobrelay topics ensure`")
        consumer.assign(partitions)
        if not await consumer.seek_to_end(*partitions):
            raise TimeoutError(f"the end offsets of {self.topic} were not found")
        for tp in partitions:  # resolves each position now, so nothing published from here on is skipped
            await consumer.position(tp)
        self.watching = True
        log.info("reading job-completed for Prefer: wait", partitions=len(partitions))
