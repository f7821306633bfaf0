"""`JobClient` and `AsyncJobClient`: submit a job over HTTP, read its status, wait for the outcome, cancel, re-run.

Every request carries the API key (`api_key`, else `JOBRELAY_API_KEY`) as `Authorization: Bearer`.
Submissions always carry an Idempotency-Key (a fresh one unless given), so the client retries a
503 or a lost answer safely: the intake maps the same key to the same job. `wait` long-polls with
`Prefer: wait=N` where the status view honours it, else polls as its `Retry-After` suggests, and
rides out 503s and dropped connections until its deadline (`waiting`); `events` follows jobs over
Server-Sent Events, resuming after every drop (`events`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Self, overload

import httpx

from jobrelay.sdk._http import ClientConfig, JobRef, backoff, retryable
from jobrelay.sdk.events import Follow, follow_async, follow_blocking
from jobrelay.sdk.retrying import RetryPolicy
from jobrelay.sdk.status import Accepted, JobView, accepted_from, raise_for_problem, submitted_from, view_from
from jobrelay.sdk.waiting import wait_async, wait_blocking

__all__ = ["AsyncJobClient", "JobClient"]


class JobClient:
    """Blocking client (httpx.Client). Use as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        status_base_url: str = "http://127.0.0.1:8001",
        client_id: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        http: httpx.Client | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("JOBRELAY_API_KEY") or None
        self.config = ClientConfig(base_url, status_base_url, client_id, max_retries=max_retries, api_key=key)
        self.http = http or httpx.Client(timeout=timeout)
        self.retry_policy = retry_policy or RetryPolicy()  # how wait() and events() pause between tries

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    @overload
    def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: None = None,
    ) -> Accepted: ...

    @overload
    def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: float,
    ) -> Accepted | JobView: ...

    def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: float | None = None,
    ) -> Accepted | JobView:
        """Submit a job; returns once the intake persisted it (202). Raises ProblemError on bad input.

        With `wait` (seconds, sent as `Prefer: wait=N`): the job's final status (a JobView) when it
        ended within that time, else the usual Accepted.
        """
        options = {
            "callback_url": callback_url,
            "timeout_s": timeout_s,
            "expires_at": expires_at,
            "max_attempts": max_attempts,
        }
        url, body, headers = self.config.submit_request(job_type, payload, idempotency_key, options, wait)
        # A long wait needs a longer read timeout; without one the client's own timeouts apply.
        limit = (self.http.timeout.read or 10.0) + wait if wait else httpx.USE_CLIENT_DEFAULT
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self.http.post(url, json=body, headers=headers, timeout=limit)
                raise_for_problem(response)
                return submitted_from(response)
            except Exception as exc:
                if not retryable(exc) or attempt == self.config.max_retries:
                    raise
                time.sleep(backoff(exc, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel(self, job: JobRef) -> JobView:
        """Ask for the job to stop (202: its status, with `cancel_requested_at`); repeating it is harmless.

        Raises JobConflict (409, `job_status` names how it ended) when the job is over already,
        JobNotFound for an unknown id. The job then ends `cancelled`, unless its outcome beat the cancel.
        """
        return view_from(self._send("DELETE", self.config.link(job, "cancel")))

    def retry(self, job: JobRef) -> Accepted:
        """Re-run a failed, cancelled or expired job as a new job (the new job's 202; idempotent per job)."""
        return accepted_from(self._send("POST", self.config.link(job, "retry", "/retry")))

    def _send(self, method: str, url: str) -> httpx.Response:
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self.http.request(method, url, headers=self.config.headers())
                raise_for_problem(response)
                return response
            except Exception as exc:
                if not retryable(exc) or attempt == self.config.max_retries:
                    raise
                time.sleep(backoff(exc, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, job: JobRef) -> JobView:
        """The job's current status. Raises JobNotFound for an unknown id."""
        response = self.http.get(self.config.status_url(job), headers=self.config.headers())
        raise_for_problem(response)
        return view_from(response)

    def wait(self, job: JobRef, timeout: float = 60.0, *, poll_interval: float = 1.0) -> JobView:
        """Block until the job is terminal and return it, riding out 503s, 429s and dropped connections.

        WaitTimeout after `timeout` seconds, naming the last status seen and the last error.
        """
        return wait_blocking(self.http, self.config, self.retry_policy, job, timeout, poll_interval)

    def events(
        self,
        jobs: Iterable[JobRef] | None = None,
        *,
        after: int | None = None,
        give_up_after: float = 300.0,
        on_drop: Callable[[BaseException], None] | None = None,
    ) -> Iterator[JobView]:
        """The jobs' status documents as they change (every job of the tenant when `jobs` is None).

        Ends once every job is terminal. Resumes by itself after a drop (`on_drop` is told first),
        from `after` at the start (an event id: `JobView.sequence`); StreamLost when it cannot get
        back on for `give_up_after` seconds.
        """
        follow = Follow(self.config, jobs, after, on_drop)
        return follow_blocking(self.http, self.config, self.retry_policy, follow, give_up_after)


class AsyncJobClient:
    """Asynchronous client (httpx.AsyncClient). Use as an async context manager, or call aclose()."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        status_base_url: str = "http://127.0.0.1:8001",
        client_id: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        http: httpx.AsyncClient | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("JOBRELAY_API_KEY") or None
        self.config = ClientConfig(base_url, status_base_url, client_id, max_retries=max_retries, api_key=key)
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self.retry_policy = retry_policy or RetryPolicy()  # how wait() and events() pause between tries

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    @overload
    async def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: None = None,
    ) -> Accepted: ...

    @overload
    async def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: float,
    ) -> Accepted | JobView: ...

    async def submit(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
        wait: float | None = None,
    ) -> Accepted | JobView:
        """Submit a job; returns once the intake persisted it (202). Raises ProblemError on bad input.

        With `wait` (seconds, sent as `Prefer: wait=N`): the job's final status (a JobView) when it
        ended within that time, else the usual Accepted.
        """
        options = {
            "callback_url": callback_url,
            "timeout_s": timeout_s,
            "expires_at": expires_at,
            "max_attempts": max_attempts,
        }
        url, body, headers = self.config.submit_request(job_type, payload, idempotency_key, options, wait)
        # A long wait needs a longer read timeout; without one the client's own timeouts apply.
        limit = (self.http.timeout.read or 10.0) + wait if wait else httpx.USE_CLIENT_DEFAULT
        for attempt in range(self.config.max_retries + 1):
            try:
                response = await self.http.post(url, json=body, headers=headers, timeout=limit)
                raise_for_problem(response)
                return submitted_from(response)
            except Exception as exc:
                if not retryable(exc) or attempt == self.config.max_retries:
                    raise
                await asyncio.sleep(backoff(exc, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def cancel(self, job: JobRef) -> JobView:
        """Ask for the job to stop; see `JobClient.cancel`."""
        return view_from(await self._send("DELETE", self.config.link(job, "cancel")))

    async def retry(self, job: JobRef) -> Accepted:
        """Re-run a failed, cancelled or expired job as a new job; see `JobClient.retry`."""
        return accepted_from(await self._send("POST", self.config.link(job, "retry", "/retry")))

    async def _send(self, method: str, url: str) -> httpx.Response:
        for attempt in range(self.config.max_retries + 1):
            try:
                response = await self.http.request(method, url, headers=self.config.headers())
                raise_for_problem(response)
                return response
            except Exception as exc:
                if not retryable(exc) or attempt == self.config.max_retries:
                    raise
                await asyncio.sleep(backoff(exc, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, job: JobRef) -> JobView:
        """The job's current status. Raises JobNotFound for an unknown id."""
        response = await self.http.get(self.config.status_url(job), headers=self.config.headers())
        raise_for_problem(response)
        return view_from(response)

    async def wait(self, job: JobRef, timeout: float = 60.0, *, poll_interval: float = 1.0) -> JobView:
        """Wait until the job is terminal and return it; see `JobClient.wait`."""
        return await wait_async(self.http, self.config, self.retry_policy, job, timeout, poll_interval)

    def events(
        self,
        jobs: Iterable[JobRef] | None = None,
        *,
        after: int | None = None,
        give_up_after: float = 300.0,
        on_drop: Callable[[BaseException], None] | None = None,
    ) -> AsyncIterator[JobView]:
        """The jobs' status documents as they change; see `JobClient.events`."""
        follow = Follow(self.config, jobs, after, on_drop)
        return follow_async(self.http, self.config, self.retry_policy, follow, give_up_after)
