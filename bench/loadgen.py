"""The load generator, written once for every system under test.

A system is two callables: `submit(i)` sends job number i and returns its key (a job id, a
Celery task id, a record key), and whatever observes completions calls `log.complete(key)`
from any thread. The open loop sends on a fixed schedule and measures each job from its
*scheduled* send time, so a sender that falls behind (a slow submit, a busy event loop) shows
up as latency instead of hiding the queueing (no coordinated omission). The closed loop submits
N as fast as it can and waits for all of them: sustained throughput at saturation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Clock",
    "CompletionLog",
    "LoadResult",
    "Submit",
    "Target",
    "closed_loop",
    "join_latencies",
    "open_loop",
    "schedule",
]

Clock = Callable[[], float]
Submit = Callable[[int], Awaitable[str]]

_POLL_S = 0.002  # how often waiting code re-checks the completion count


def schedule(rate: float, duration: float, limit: int) -> list[float]:
    """Send offsets in seconds for `rate` jobs/s over `duration` seconds, at most `limit` jobs."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    count = min(round(rate * duration), limit)
    return [i / rate for i in range(count)]


def join_latencies(started: Mapping[str, float], completed: Mapping[str, float]) -> tuple[list[float], float | None]:
    """Latency of every started key that completed, and the last completion time (None if none)."""
    latencies, last = [], None
    for key, start in started.items():
        end = completed.get(key)
        if end is not None:
            latencies.append(max(0.0, end - start))
            last = end if last is None else max(last, end)
    return latencies, last


class CompletionLog:
    """When each key was seen complete; `complete` may be called from any thread."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._done: dict[str, float] = {}
        self._expected: set[str] = set()
        self._hits = 0

    def complete(self, key: str) -> None:
        """Record that `key` completed now (the first observation wins)."""
        now = self._clock()
        with self._lock:
            if key in self._done:
                return
            self._done[key] = now
            self._hits += key in self._expected

    def expect(self, keys: Iterable[str]) -> None:
        """Count these keys towards `pending` (they may have completed already)."""
        with self._lock:
            for key in keys:
                if key not in self._expected:
                    self._expected.add(key)
                    self._hits += key in self._done

    @property
    def pending(self) -> int:
        """Expected keys not seen complete yet."""
        with self._lock:
            return len(self._expected) - self._hits

    def snapshot(self) -> dict[str, float]:
        """A copy of key → completion time."""
        with self._lock:
            return dict(self._done)

    async def wait(self, deadline: float) -> bool:
        """Wait until nothing is pending or the clock passes `deadline`; True when nothing is pending."""
        # Completions arrive from other threads too, so poll the count rather than await an Event.
        while self.pending and self._clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)
        return not self.pending


@dataclass(frozen=True, slots=True)
class Target:
    """A system under test as the load generator sees it: how to submit, where completions land."""

    submit: Submit
    log: CompletionLog
    # Submits in flight at most, closed and open loop alike (None: the plan's). An HTTP target
    # sets its connection count: requests beyond it would queue inside httpx's pool, which scans
    # its waiters on every request, so thousands of them melt the load generator (measured: a
    # saturated intake "collapsing" to 70 req/s was the client). Jobs that wait here for a slot
    # still count their latency from their scheduled send time.
    max_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load run: what was planned, sent and completed, and every job's latency in seconds."""

    offered: float | None  # jobs/s on the schedule; None for the closed loop
    planned: int
    submitted: int
    failed: int  # submit raised
    latencies: tuple[float, ...]
    elapsed: float  # first (scheduled) send to last completion, seconds

    @property
    def completed(self) -> int:
        """Jobs seen complete."""
        return len(self.latencies)

    @property
    def throughput(self) -> float | None:
        """Completed jobs per second over the run."""
        return self.completed / self.elapsed if self.completed and self.elapsed > 0 else None


class _Sender:
    """Runs submits as tasks, records each key's start time, counts failures."""

    def __init__(self, submit: Submit, log: CompletionLog, max_in_flight: int) -> None:
        self.submit, self.log = submit, log
        self.started: dict[str, float] = {}
        self.failed = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def launch(self, index: int, at: float) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._send(index, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, index: int, at: float) -> None:
        try:
            key = await self.submit(index)
        except Exception:  # noqa: BLE001 - a failed submit is a lost job, counted, not fatal
            self.failed += 1
        else:
            self.started[key] = at
            self.log.expect((key,))
        finally:
            self._slots.release()

    async def settle(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def result(self, offered: float | None, planned: int, first: float) -> LoadResult:
        latencies, last = join_latencies(self.started, self.log.snapshot())
        elapsed = (last - first) if last is not None else 0.0
        return LoadResult(offered, planned, len(self.started), self.failed, tuple(latencies), elapsed)


async def open_loop(
    submit: Submit,
    log: CompletionLog,
    *,
    rate: float,
    duration: float,
    max_jobs: int,
    drain_timeout: float,
    max_in_flight: int = 10_000,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """Send on a fixed schedule at `rate` jobs/s, then wait up to `drain_timeout` s for completions."""
    offsets = schedule(rate, duration, max_jobs)
    sender = _Sender(submit, log, max_in_flight)
    start = clock() + 0.005
    give_up = start + duration * 2 + drain_timeout  # a sender this late has lost the run anyway
    for index, offset in enumerate(offsets):
        at = start + offset
        if (delay := at - clock()) > 0:
            await asyncio.sleep(delay)
        if clock() > give_up:
            break
        await sender.launch(index, at)
    await sender.settle(drain_timeout)
    await log.wait(clock() + drain_timeout)
    return sender.result(rate, len(offsets), start)


async def closed_loop(
    submit: Submit,
    log: CompletionLog,
    *,
    count: int,
    timeout: float,
    max_in_flight: int = 256,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """Submit `count` jobs as fast as they are accepted and wait (up to `timeout` s) for all of them."""
    sender = _Sender(submit, log, max_in_flight)
    start = clock()
    deadline = start + timeout
    for index in range(count):
        if clock() > deadline:
            break
        await sender.launch(index, clock())
    await sender.settle(max(0.0, deadline - clock()))
    await log.wait(deadline)
    return sender.result(None, count, start)
