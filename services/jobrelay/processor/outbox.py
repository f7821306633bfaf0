"""Group commit: every partition's outputs and offsets go out together, one transaction at a time.

Jobs put their encoded events here as they emit them and mark their partition dirty when its
ledger changed. A single task runs the transactions: as soon as there is something to write and
the previous transaction has ended, it takes everything that came meanwhile (outputs of every
partition, and each dirty partition's commit point and ledger metadata) into the next one. Under
load a transaction carries hundreds of jobs; at light load a job is committed within one
transaction's time of finishing, with its STARTED event in the same transaction when it finished
quickly (a job no longer waits for a transaction of its own before its handler runs).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from confluent_kafka import TopicPartition

from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import PRODUCED
from jobrelay.processor.kafka import Output, TransactionalWriter
from jobrelay.processor.metrics import TRANSACTION_SECONDS, TRANSACTIONS

__all__ = ["Outbox", "Positioned"]

log = get_logger(__name__)


class Positioned(Protocol):
    """A partition whose commit point and ledger metadata go into the next transaction."""

    @property
    def partition(self) -> int:
        """The input partition number."""
        ...

    def position(self) -> tuple[int, str]:
        """The offset to commit and its metadata."""
        ...


class Outbox:
    """Collects outputs and dirty partitions; one task commits them in transactions."""

    def __init__(
        self,
        writer: TransactionalWriter,
        topic: str,
        *,
        linger: float,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.writer, self.topic, self.linger, self.on_fatal = writer, topic, linger, on_fatal
        self.failed: BaseException | None = None
        self._outputs: list[Output] = []
        self._dirty: dict[int, Positioned] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._inflight: asyncio.Future[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="processor-txn")
        self._task = asyncio.create_task(self._run(), name="processor-outbox")

    def emit(self, output: Output) -> None:
        """Queue an encoded event for the next transaction."""
        self._outputs.append(output)
        self._wake.set()

    def touch(self, source: Positioned) -> None:
        """`source`'s ledger changed: its offset goes into the next transaction."""
        self._dirty[source.partition] = source
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything queued before the call is committed (raises if it cannot be)."""
        if self.failed is not None:
            raise self.failed
        if not self._outputs and not self._dirty:
            if self._inflight is not None:  # queued earlier, being committed now
                await asyncio.shield(self._inflight)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    def forget(self, partitions: set[int]) -> None:
        """Drop what is queued for partitions that are no longer ours (lost to another owner)."""
        self._outputs = [o for o in self._outputs if o.partition not in partitions]
        for partition in partitions:
            self._dirty.pop(partition, None)

    async def close(self) -> None:
        """Commit what is left, then stop the transaction task."""
        try:
            if self.failed is None:
                await self.flush()
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self.linger:
                await asyncio.sleep(self.linger)  # gather more outputs into this transaction
            self._wake.clear()
            outputs, dirty, waiters = self._outputs, self._dirty, self._waiters
            self._outputs, self._dirty, self._waiters = [], {}, []
            if outputs or dirty:
                offsets = [TopicPartition(self.topic, p, *source.position()) for p, source in dirty.items()]
                self._inflight = asyncio.get_running_loop().create_future()
                try:
                    await self._commit(outputs, offsets)
                except Exception as exc:  # noqa: BLE001 - ends the outbox; nobody may wait on it forever
                    self._fail(exc, [*waiters, self._inflight])
                    return
                waiters.append(self._inflight)
                self._inflight = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _commit(self, outputs: list[Output], offsets: list[TopicPartition]) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.writer.write, outputs, offsets, self._retried)
        TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        TRANSACTIONS.labels("committed").inc()
        for topic, count in Counter(o.topic for o in outputs).items():
            PRODUCED.labels("processor", topic).inc(count)

    def _retried(self, error: str) -> None:
        TRANSACTIONS.labels("retried").inc()
        log.warning("transaction retried", error=error)

    def _fail(self, exc: BaseException, waiters: list[asyncio.Future[None]]) -> None:
        self.failed = exc
        TRANSACTIONS.labels("failed").inc()
        for waiter in [*waiters, *self._waiters]:
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: whoever waits re-raises it
        self._waiters.clear()
        self.on_fatal(exc)
