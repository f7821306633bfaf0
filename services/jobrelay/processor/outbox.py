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
from jobrelay.processor.kafka import Aborted, Output, TransactionalWriter
from jobrelay.processor.metrics import TRANSACTION_SECONDS, TRANSACTIONS

__all__ = ["Outbox", "Positioned"]

log = get_logger(__name__)
_BACKOFF_S, _BACKOFF_MAX_S = 0.05, 2.0


class Positioned(Protocol):
    """A partition whose commit point and ledger metadata go into the next transaction."""

    live: bool  # False once the partition was handed back or lost: what it queued is no longer ours

    @property
    def partition(self) -> int:
        """The input partition number."""
        ...

    def position(self) -> tuple[int, str]:
        """The offset to commit and its metadata."""
        ...

    def release(self) -> None:
        """Queue the events it held back for the next transaction."""
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
        self._outputs: list[tuple[Positioned, Output]] = []
        self._dirty: dict[int, Positioned] = {}
        self._holding: dict[int, Positioned] = {}  # sources with held-back events
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._inflight: asyncio.Future[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="processor-txn")
        self._task = asyncio.create_task(self._run(), name="processor-outbox")

    def emit(self, source: Positioned, output: Output) -> None:
        """Queue an encoded event of `source`'s for the next transaction."""
        self._outputs.append((source, output))
        self._wake.set()

    def hold(self, source: Positioned) -> None:
        """`source` holds events back until the next transaction is made (its ledger changed too)."""
        self._holding[source.partition] = source
        self.touch(source)

    def touch(self, source: Positioned) -> None:
        """`source`'s ledger changed: its offset goes into the next transaction."""
        self._dirty[source.partition] = source
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything queued before the call is committed (raises if it cannot be)."""
        if self.failed is not None:
            raise self.failed
        if not self._outputs and not self._dirty and not self._holding:
            if self._inflight is not None:  # queued earlier, being committed now
                await asyncio.shield(self._inflight)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    def forget(self) -> None:
        """Drop what is queued by sources that are no longer live (lost to another owner)."""
        self._outputs = [pair for pair in self._outputs if pair[0].live]
        self._dirty = {p: source for p, source in self._dirty.items() if source.live}

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
        backoff = _BACKOFF_S
        while True:
            await self._wake.wait()
            if self.linger:
                await asyncio.sleep(self.linger)  # gather more outputs into this transaction
            self._wake.clear()
            holding, self._holding = self._holding, {}
            for source in holding.values():
                if source.live:
                    source.release()
            outputs, dirty, waiters = self._outputs, self._dirty, self._waiters
            self._outputs, self._dirty, self._waiters = [], {}, []
            if outputs or dirty:
                self._inflight = asyncio.get_running_loop().create_future()
                try:
                    await self._commit(outputs, dirty)
                except Aborted as exc:
                    backoff = await self._requeue(outputs, dirty, waiters, exc, backoff)
                    continue
                except Exception as exc:  # noqa: BLE001 - ends the outbox; nobody may wait on it forever
                    self._fail(exc, [*waiters, self._inflight])
                    return
                backoff = _BACKOFF_S
                waiters.append(self._inflight)
                self._inflight = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _requeue(
        self,
        outputs: list[tuple[Positioned, Output]],
        dirty: dict[int, Positioned],
        waiters: list[asyncio.Future[None]],
        exc: Aborted,
        backoff: float,
    ) -> float:
        """Put an aborted batch back (only what live partitions queued), and wait before the next try."""
        TRANSACTIONS.labels("aborted").inc()
        log.warning("transaction aborted; retrying what is still ours", error=str(exc), retry_in_s=backoff)
        self._outputs = [pair for pair in outputs if pair[0].live] + self._outputs
        self._dirty = {p: source for p, source in dirty.items() if source.live} | self._dirty
        self._waiters = [*waiters, *self._waiters]
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            self._waiters.append(inflight)
        await asyncio.sleep(backoff)  # a rebalance or a coordinator move settles meanwhile
        self._wake.set()
        return min(backoff * 2, _BACKOFF_MAX_S)

    async def _commit(self, outputs: list[tuple[Positioned, Output]], dirty: dict[int, Positioned]) -> None:
        started = time.perf_counter()
        offsets = [TopicPartition(self.topic, p, *source.position()) for p, source in dirty.items()]
        records = [output for _, output in outputs]
        await asyncio.get_running_loop().run_in_executor(self._executor, self.writer.write, records, offsets)
        TRANSACTION_SECONDS.observe(time.perf_counter() - started)
        TRANSACTIONS.labels("committed").inc()
        for topic, count in Counter(o.topic for o in records).items():
            PRODUCED.labels("processor", topic).inc(count)

    def _fail(self, exc: BaseException, waiters: list[asyncio.Future[None]]) -> None:
        self.failed = exc
        TRANSACTIONS.labels("failed").inc()
        for waiter in [*waiters, *self._waiters]:
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: whoever waits re-raises it
        self._waiters.clear()
        self.on_fatal(exc)
