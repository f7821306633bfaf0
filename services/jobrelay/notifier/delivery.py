"""The delivery scheduler: picks due deliveries and runs their attempts, bounded globally and per host.

Every attempt runs as its own task. At most `max_concurrency` run at once, and at most
`per_host_concurrency` against one host:port, so a receiver that hangs ties up only its own slots
and everyone else's webhooks keep flowing. The loop sleeps until the next delivery falls due, a
new one is recorded (`wake()`), or an attempt finishes. Final failures are published to job-dlq
from the store's outbox, so a dead letter survives a crash between the verdict and Kafka's ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from jobrelay.jobs.events import JobDeadLettered
from jobrelay.notifier.deadletters import dead_letter
from jobrelay.notifier.store import Delivery, DeliveryStore
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import DEAD_LETTERED

__all__ = ["Dispatcher"]

log = get_logger(__name__)

Attempt = Callable[[Delivery], Awaitable[object]]
Publish = Callable[[JobDeadLettered], Awaitable[object]]


class Dispatcher:
    """Runs due deliveries until stopped."""

    def __init__(
        self,
        store: DeliveryStore,
        attempt: Attempt,
        publish: Publish,
        *,
        max_concurrency: int,
        per_host: int,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.attempt, self.publish = store, attempt, publish
        self.max_concurrency, self.per_host = max_concurrency, per_host
        self.poll_interval, self.clock = poll_interval, clock
        self._running: dict[int, asyncio.Task[None]] = {}
        self._hosts: Counter[str] = Counter()
        self._settled: set[int] = set()  # attempts that ended while a due() query was in flight
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Attempts running now."""
        return len(self._running)

    def wake(self) -> None:
        """Look for due deliveries now (new ones were recorded)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop starting attempts; `run()` returns after `drain()`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until stop()."""
        while not self._stopping.is_set():
            await self.flush_dead_letters()
            await self.dispatch()
            await self._sleep()

    async def drain(self, grace: float) -> None:
        """Give running attempts `grace` seconds, then cancel them (they stay pending and run again later)."""
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.flush_dead_letters()

    async def dispatch(self) -> int:
        """Start attempts for due deliveries within the limits; returns how many started."""
        free = self.max_concurrency - len(self._running)
        if free <= 0:
            return 0
        self._settled.clear()
        window = await self.store.due(self.clock(), limit=free + len(self._running), per_host=self.per_host)
        # An attempt that ended during the query may be in the window as it was before: not again.
        skip = self._settled | self._running.keys()
        started, unused = 0, []
        for delivery in window:
            if started == free or delivery.id in skip or self._hosts[delivery.host] >= self.per_host:
                if delivery.id not in self._running:
                    unused.append(delivery.id)
                continue
            self._start(delivery)
            started += 1
        await self.store.release(unused)  # a shared store claimed them for this replica: hand them back
        return started

    def _start(self, delivery: Delivery) -> None:
        self._hosts[delivery.host] += 1
        task = asyncio.create_task(self._run_one(delivery), name=f"webhook-{delivery.id}")
        self._running[delivery.id] = task

    async def _run_one(self, delivery: Delivery) -> None:
        try:
            await self.attempt(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # one broken attempt must not stop the others; it stays pending and is retried
            log.exception("webhook attempt crashed", job_id=delivery.completion.job_id, delivery_id=delivery.id)
        finally:
            self._hosts[delivery.host] -= 1
            del self._running[delivery.id]
            self._settled.add(delivery.id)
            self._wake.set()

    async def _sleep(self) -> None:
        """Until the next due time, a wake-up, or the poll interval, whichever comes first."""
        now = self.clock()
        upcoming = await self.store.next_due_at(after=now)
        timeout = self.poll_interval if upcoming is None else min(max(upcoming - now, 0.0), self.poll_interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def flush_dead_letters(self) -> int:
        """Publish the outbox of final failures to job-dlq; what Kafka does not take stays for the next round."""
        published = 0
        for delivery in await self.store.dead_letters_pending(limit=100):
            try:
                await self.publish(dead_letter(delivery))
            except Exception:  # Kafka unavailable: keep the letter, try again on the next round
                log.exception("dead letter not published yet", job_id=delivery.completion.job_id)
                return published
            await self.store.dead_lettered(delivery.id)
            DEAD_LETTERED.labels("notifier", "WEBHOOK_UNDELIVERABLE").inc()
            published += 1
        return published
