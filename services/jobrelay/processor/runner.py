"""One job's life in the processor: attempts, timeout, expiry, heartbeats, retries with backoff, cancel, outcome.

A cancel request reaches the run through `cancel`: a job queued for a slot or waiting for its
retry ends CANCELLED at once; a running handler's task is cancelled (it may catch
`asyncio.CancelledError` to clean up) and the job ends CANCELLED when the handler returns, or when
`cancel_grace_s` has passed, whichever comes first. `expires_at` bounds every attempt as well as
its start: an attempt still running then ends the job EXPIRED.

A job waiting for its retry holds no slot (`slots` bounds only running handlers) and does not
hold up the other jobs of its partition; it does hold that partition's commit point, which is
what `max_window` and `max_pending_per_partition` bound (the partition pauses when either fills).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from jobrelay.jobs.events import (
    DeadLetterReason,
    JobError,
    JobRequested,
    ProgressKind,
    TerminalStatus,
    utcnow,
)
from jobrelay.messaging.loop import Received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.tracing import consume_span
from jobrelay.processor import metrics
from jobrelay.processor.handlers import Handler, Job, PermanentError, RetryableError
from jobrelay.processor.ledger import Attempted
from jobrelay.processor.outputs import completed, dead_letter, progress
from jobrelay.processor.partition import PartitionWorker

__all__ = ["JobRun", "RunConfig", "backoff"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The settings a job run needs."""

    default_timeout_s: float
    heartbeat_interval_s: float
    backoff_base_s: float
    backoff_max_s: float
    max_result_bytes: int
    worker_id: str
    cancel_grace_s: float = 10.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: str | None = None
    error: JobError | None = None
    delay_s: float | None = None
    expired: bool = False  # the attempt ran into the job's expires_at


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto


class JobRun:
    """Runs one accepted job to its single terminal outcome (or until its partition is closed)."""

    def __init__(
        self,
        worker: PartitionWorker,
        received: Received,
        payload: Any,
        handler: Handler,
        config: RunConfig,
        slots: asyncio.Semaphore,
        previous: Attempted | None,
    ) -> None:
        assert isinstance(received.event, JobRequested)  # noqa: S101 - the engine only passes requests
        self.request: JobRequested = received.event
        self.worker, self.received, self.payload, self.handler = worker, received, payload, handler
        self.config, self.slots, self.previous = config, slots, previous
        self._n = 0  # events emitted in the current attempt
        self._active: int | None = None  # the attempt whose handler runs; progress reported later is dropped
        self._last_error: JobError | None = None
        self._started = previous.attempt if previous is not None else 0  # the last attempt that started
        self._started_at: datetime | None = None
        self._cancels: list[int] = []  # offsets of the cancel requests received for this job
        self._grace: asyncio.TimerHandle | None = None
        self._over = False  # the outcome is queued: nothing else is emitted for this job
        self._running_when_cancelled = False
        self.task: asyncio.Task[None] | None = None  # set by whoever spawns `run()`

    def cancel(self, offset: int) -> None:
        """A cancel request (at `offset`) for this job: stop it; its outcome will be CANCELLED."""
        self._cancels.append(offset)
        if self._over or len(self._cancels) > 1 or self.task is None or self.task.done():
            return  # a repeated cancel changes nothing; its offset is finished with the outcome
        if self._active is not None:  # the handler runs: it gets the grace period to clean up
            self._running_when_cancelled = True
            self._grace = asyncio.get_running_loop().call_later(self.config.cancel_grace_s, self._grace_over)
        self.task.cancel()

    async def run(self) -> None:
        """Attempt the job until it ends; a closing partition leaves it to the next owner."""
        r = self.received
        with (
            structlog.contextvars.bound_contextvars(job_id=self.request.job_id, job_type=self.request.job_type),
            consume_span(r.topic, r.partition, r.offset, self.request.job_id, r.headers),
        ):
            attempt: int | None
            attempt, due_ms = self._resume()
            try:
                while attempt is not None:
                    if due_ms is not None:
                        await asyncio.sleep(max(0.0, due_ms / 1000 - time.time()))
                    attempt, due_ms = await self._attempt(attempt)
            except asyncio.CancelledError:
                if not self._cancels or self.worker.closing:
                    raise  # the partition is closing: the next owner reads the job (and its cancel) again
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                self._cancelled()
            finally:
                if self._grace is not None:
                    self._grace.cancel()
                self._forget()

    def _forget(self) -> None:
        if self.worker.runs.get(self.request.job_id) is self:
            del self.worker.runs[self.request.job_id]

    def _cancelled(self, note: str | None = None) -> None:
        if note is not None:
            message = note
        elif self._running_when_cancelled:
            message = f"cancelled while attempt {self._started} was running"
        elif self._started == 0:
            message = "cancelled before it started"
        else:
            message = f"cancelled while waiting to retry (after attempt {self._started})"
        error = JobError("cancelled", message)
        self._finish(self._started, TerminalStatus.CANCELLED, error, started_at=self._started_at)
        metrics.child(metrics.JOBS_CANCELLED, self.request.job_type).inc()

    def _grace_over(self) -> None:
        if self._over:
            return
        log.warning("the handler did not stop within its cancel grace period", grace_s=self.config.cancel_grace_s)
        self._cancelled(
            f"cancelled while attempt {self._started} was running (the handler did not stop within "
            f"{self.config.cancel_grace_s:g}s)"
        )

    def _resume(self) -> tuple[int, int | None]:
        if self.previous is None:
            return max(1, self.request.attempt), None
        if self.previous.retry_at_ms is None:
            self._last_error = JobError("interrupted", f"attempt {self.previous.attempt} was interrupted", True)
        return self.previous.attempt + 1, self.previous.retry_at_ms

    async def _attempt(self, attempt: int) -> tuple[int | None, int | None]:
        if attempt > self.request.max_attempts:
            self._exhausted(attempt - 1)
            return None, None
        async with self.slots:
            if self.worker.closing:
                return None, None
            if self._expired(utcnow()):
                self._expire(attempt, "the job expired before it could start")
                return None, None
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - always inside a task
            self.worker.running.add(task)
            try:
                outcome, started_at = await self._execute(attempt)
            finally:
                self.worker.running.discard(task)
        return self._conclude(attempt, outcome, started_at)

    async def _execute(self, attempt: int) -> tuple[_Outcome, datetime]:
        started_at = utcnow()
        self._started, self._started_at = attempt, started_at
        self.worker.start(self.received.offset, attempt, self._progress(attempt, ProgressKind.STARTED))
        metrics.child(metrics.JOBS_STARTED, self.request.job_type).inc()
        log.info("job started", attempt=attempt)
        timeout = self.request.timeout_s or self.config.default_timeout_s
        expires = self.request.expires_at
        until_expiry = (expires - started_at).total_seconds() if expires is not None else None
        expiry_first = until_expiry is not None and until_expiry < timeout
        budget = until_expiry if until_expiry is not None and expiry_first else timeout
        job = self._job(attempt, started_at + timedelta(seconds=budget))
        self._active = attempt
        heartbeat = asyncio.create_task(self._heartbeat(attempt))
        metrics.IN_FLIGHT.inc()
        clock, limit = time.monotonic(), asyncio.timeout(budget)
        try:
            async with limit:
                outcome = self._success(await self.handler(job, self._reporter(attempt)))
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes an outcome, none escapes
            delay = exc.delay_s if isinstance(exc, RetryableError) else None
            if limit.expired() and expiry_first:
                message = f"the job expired while attempt {attempt} was running"
                outcome = _Outcome(error=JobError("expired", message), expired=True)
            else:
                outcome = _Outcome(error=self._classify(exc, attempt, timeout, limit.expired()), delay_s=delay)
        finally:
            self._active = None
            heartbeat.cancel()
            metrics.IN_FLIGHT.dec()
        label = "succeeded" if outcome.error is None else outcome.error.code
        metrics.child(metrics.JOB_DURATION, self.request.job_type, label).observe(time.monotonic() - clock)
        return outcome, started_at

    def _job(self, attempt: int, deadline: datetime) -> Job:
        r = self.request
        return Job(
            id=r.job_id,
            type=r.job_type,
            payload=self.payload,
            attempt=attempt,
            max_attempts=r.max_attempts,
            deadline=deadline,
            expires_at=r.expires_at,
            callback_url=r.callback_url,
            client_id=r.client_id,
        )

    def _classify(self, exc: Exception, attempt: int, timeout: float, timed_out: bool) -> JobError:
        if timed_out:
            return JobError("timeout", f"attempt {attempt} ran past its {timeout:g}s timeout", True)
        if isinstance(exc, PermanentError):
            return JobError("handler_error", str(exc) or type(exc).__name__, False)
        if isinstance(exc, RetryableError):
            return JobError("handler_error", str(exc) or type(exc).__name__, True)
        # An unexpected exception is most often transient (a network call, a busy dependency).
        log.warning("handler raised", attempt=attempt, exc_info=exc)
        return JobError("handler_error", f"{type(exc).__name__}: {exc}", True)

    def _success(self, value: Any) -> _Outcome:
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            return _Outcome(error=JobError("invalid_result", f"the result is not JSON-serialisable: {exc}"))
        if len(text.encode()) > self.config.max_result_bytes:
            size = len(text.encode())
            return _Outcome(
                error=JobError(
                    "result_too_large", f"the result has {size} bytes; the limit is {self.config.max_result_bytes}"
                )
            )
        return _Outcome(result=text)

    def _conclude(self, attempt: int, outcome: _Outcome, started_at: datetime) -> tuple[int | None, int | None]:
        if self._cancels:  # the handler returned (or failed) after its cancellation: the cancel wins
            self._cancelled()
            return None, None
        if outcome.expired and outcome.error is not None:
            self._finish(attempt, TerminalStatus.EXPIRED, error=outcome.error, started_at=started_at)
            metrics.child(metrics.JOBS_EXPIRED, self.request.job_type).inc()
            return None, None
        error = outcome.error
        if error is None:
            self._finish(attempt, TerminalStatus.SUCCEEDED, result=outcome.result, started_at=started_at)
            metrics.child(metrics.JOBS_SUCCEEDED, self.request.job_type).inc()
            return None, None
        self._last_error = error
        if not error.retryable:
            self._finish(attempt, TerminalStatus.FAILED, error=error, started_at=started_at)
            metrics.child(metrics.JOBS_FAILED, self.request.job_type, error.code).inc()
            return None, None
        if attempt >= self.request.max_attempts:
            self._exhausted(attempt)
            return None, None
        return self._schedule_retry(attempt, error, outcome.delay_s)

    def _schedule_retry(self, attempt: int, error: JobError, delay_s: float | None) -> tuple[int | None, int | None]:
        delay = (
            delay_s if delay_s is not None else backoff(attempt, self.config.backoff_base_s, self.config.backoff_max_s)
        )
        retry_at = utcnow() + timedelta(seconds=max(0.0, delay))
        if self._expired(retry_at):
            self._expire(attempt, f"{error.code}: {error.message}; the retry would start after expires_at")
            return None, None
        scheduled = self._progress(attempt, ProgressKind.RETRY_SCHEDULED, message=error.message, retry_at=retry_at)
        due_ms = int(retry_at.timestamp() * 1000)
        self.worker.retry_later(self.received.offset, attempt, due_ms, scheduled)
        metrics.child(metrics.JOBS_RETRIED, self.request.job_type).inc()
        log.info("retry scheduled", attempt=attempt, retry_at=retry_at.isoformat(), error=error.message)
        return attempt + 1, due_ms

    def _exhausted(self, attempt: int) -> None:
        last = self._last_error or JobError("unknown", "no attempt succeeded")
        message = f"gave up after {attempt} attempt(s); last error {last.code}: {last.message}"
        record = self.received.record
        assert record is not None  # noqa: S101 - ConsumerLoop always keeps the raw record
        letter = dead_letter(
            record, DeadLetterReason.RETRIES_EXHAUSTED, message, request=self.request, attempt=max(1, attempt)
        )
        self._finish(max(1, attempt), TerminalStatus.FAILED, JobError("retries_exhausted", message), extra=letter)
        metrics.child(metrics.JOBS_FAILED, self.request.job_type, "retries_exhausted").inc()

    def _expired(self, at: datetime) -> bool:
        return self.request.expires_at is not None and at >= self.request.expires_at

    def _expire(self, attempt: int, message: str) -> None:
        self._finish(attempt, TerminalStatus.EXPIRED, error=JobError("expired", message))
        metrics.child(metrics.JOBS_EXPIRED, self.request.job_type).inc()

    def _finish(
        self,
        attempt: int,
        status: TerminalStatus,
        error: JobError | None = None,
        *,
        result: str | None = None,
        started_at: datetime | None = None,
        extra: Any = None,
    ) -> None:
        if self._over:
            return  # the outcome is out already (a cancel's grace period ended before the handler did)
        self._over = True
        self._forget()
        event = completed(self.request, attempt, status, result=result, error=error, started_at=started_at)
        self.worker.finish(self.received.offset, event, *([extra] if extra is not None else []))
        for offset in self._cancels:  # the cancel requests are done with the outcome, in its transaction
            self.worker.skip(offset)
        log.info("job finished", attempt=attempt, status=status.value, code=error.code if error else None)

    def _progress(self, attempt: int, kind: ProgressKind, **fields: Any) -> Any:
        self._n = 1 if kind is ProgressKind.STARTED else self._n + 1
        return progress(self.request, attempt, self._n, kind, worker=self.config.worker_id, **fields)

    def _reporter(self, attempt: int) -> Any:
        async def report(percent: float | None = None, message: str | None = None) -> None:
            if self._active != attempt:
                return  # a task the handler left behind reports after its attempt ended
            if percent is not None:
                percent = min(100.0, max(0.0, float(percent)))
            self.worker.emit(self._progress(attempt, ProgressKind.PROGRESS, percent=percent, message=message))

        return report

    async def _heartbeat(self, attempt: int) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            self.worker.emit(self._progress(attempt, ProgressKind.HEARTBEAT))
