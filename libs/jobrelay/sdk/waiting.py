"""`wait()`: long-poll a job's status until it is terminal, retrying what fails on the way, up to a deadline.

Why the long-poll (`GET /v1/jobs/{id}` with `Prefer: wait=N`) and not the job's event stream:
`wait()` needs only the outcome, and the long-poll answers as soon as the job changes; each
request is bounded (N seconds), so a half-open connection shows within N seconds without
keep-alive parsing; the ETag (`If-None-Match`) resumes it as Last-Event-ID would; and it holds
none of the tenant's capped stream slots, which front ends watching jobs need. Where the status
view does not long-poll, it polls as `Retry-After` suggests.

Every request is retried by the client's `RetryPolicy` (503, 502, 504, 429 with its Retry-After,
refused or reset connections, read timeouts) until the deadline; then `WaitTimeout` says which
status it last saw and what the last try ran into.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from jobrelay.sdk._http import ClientConfig, JobRef, pause_after
from jobrelay.sdk.errors import WaitTimeout
from jobrelay.sdk.retrying import RetryPolicy, retryable
from jobrelay.sdk.status import JobView, raise_for_problem, view_from

__all__ = ["Waiter", "wait_async", "wait_blocking"]


class Waiter:
    """One wait's state: where to ask, until when, and what it saw last (pure: no I/O)."""

    def __init__(
        self, config: ClientConfig, job: JobRef, timeout: float, poll_interval: float, clock: Callable[[], float]
    ) -> None:
        self.config, self.timeout, self.poll_interval, self.clock = config, timeout, poll_interval, clock
        self.url = config.status_url(job)
        self.job_id = job if isinstance(job, str) else job.id
        self.deadline = clock() + timeout
        self.last: JobView | None = None

    def left(self) -> float:
        """Seconds until the deadline (negative past it)."""
        return self.deadline - self.clock()

    def request(self, base: httpx.Timeout) -> tuple[dict[str, str], httpx.Timeout]:
        """Headers of the next poll (`Prefer: wait`, `If-None-Match`) and its timeouts (read covers the wait)."""
        left = max(0.0, self.left())
        headers = self.config.wait_headers(left, self.last.etag if self.last else None)
        read = (base.read or 10.0) + min(float(self.config.max_wait), left)
        return headers, httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    def take(self, response: httpx.Response) -> float | None:
        """Note an answer; None when the job is terminal, else the pause before the next poll."""
        self.last = self.last if response.status_code == 304 and self.last else view_from(response)
        if self.last.terminal:
            return None
        left = self.left()
        if left <= 0:
            raise self.timed_out(None)
        return pause_after(response, self.last, left, self.poll_interval)

    def timed_out(self, error: BaseException | None) -> WaitTimeout:
        """The timeout error: what it saw last and, when the last try failed, why."""
        return WaitTimeout(self.job_id, self.last, error, self.timeout)

    @property
    def outcome(self) -> JobView:
        """The terminal status (after `take` returned None)."""
        if self.last is None:
            raise AssertionError("no status yet")
        return self.last


def wait_blocking(
    http: httpx.Client, config: ClientConfig, policy: RetryPolicy, job: JobRef, timeout: float, poll_interval: float
) -> JobView:
    """Block until `job` is terminal; WaitTimeout after `timeout` seconds (see the module doc)."""
    waiter = Waiter(config, job, timeout, poll_interval, policy.clock)

    def poll() -> httpx.Response:
        headers, timeouts = waiter.request(http.timeout)
        response = http.get(waiter.url, headers=headers, timeout=timeouts)
        raise_for_problem(response)
        return response

    while True:
        try:
            response = policy.retrying(waiter.deadline)(poll)
        except Exception as exc:
            if not retryable(exc):
                raise
            raise waiter.timed_out(exc) from exc
        pause = waiter.take(response)
        if pause is None:
            return waiter.outcome
        time.sleep(pause)


async def wait_async(
    http: httpx.AsyncClient,
    config: ClientConfig,
    policy: RetryPolicy,
    job: JobRef,
    timeout: float,
    poll_interval: float,
) -> JobView:
    """Like `wait_blocking`, for asyncio."""
    waiter = Waiter(config, job, timeout, poll_interval, policy.clock)

    async def poll() -> httpx.Response:
        headers, timeouts = waiter.request(http.timeout)
        response = await http.get(waiter.url, headers=headers, timeout=timeouts)
        raise_for_problem(response)
        return response

    while True:
        try:
            response: httpx.Response = await policy.aretrying(waiter.deadline)(poll)
        except Exception as exc:
            if not retryable(exc):
                raise
            raise waiter.timed_out(exc) from exc
        pause = waiter.take(response)
        if pause is None:
            return waiter.outcome
        await asyncio.sleep(pause)
