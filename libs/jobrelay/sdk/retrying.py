"""When the SDK asks again: exponential backoff with full jitter, the server's Retry-After, a deadline.

`RetryPolicy` builds tenacity retryers (sync and async) that retry what is worth retrying — a
429, 502, 503 or 504 answer, or a request that got no answer at all (connection refused or reset,
a read timeout, a peer that hung up mid-answer) — and raise anything else at once. Each pause is
the server's `Retry-After` when it gave one, else a random time in an exponentially widening
window ("full jitter"), never past the deadline: the last try is made at the deadline, and when
the server asks for a pause longer than what is left, the retryer gives up at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import tenacity

from jobrelay.sdk.errors import TransientError, describe

__all__ = ["RetryPolicy", "retryable"]

# stdlib logging: silent in a caller's program unless it configures logging; the services render it with structlog.
log = logging.getLogger("jobrelay.sdk")

# No answer at all: nothing reached the service, or its answer was lost; asking again is safe.
_NO_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def retryable(exc: BaseException) -> bool:
    """Whether a failed request is worth another try: 429/502/503/504, or no answer at all."""
    return isinstance(exc, (TransientError, *_NO_ANSWER))


def _hint(exc: BaseException | None) -> float | None:
    return exc.retry_after if isinstance(exc, TransientError) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to pause between tries: full-jitter exponential backoff, or the server's Retry-After.

    Pause n (from 1) is uniform in [0, min(maximum, initial * 2**(n-1))]; a Retry-After is
    honoured up to `max_retry_after` seconds. `clock` must be monotonic (tests pass a fake one).
    """

    initial: float = 0.25
    maximum: float = 5.0
    max_retry_after: float = 60.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def pause(self, state: tenacity.RetryCallState, deadline: float) -> float:
        """The pause before the next try: Retry-After, else full jitter clipped to the deadline."""
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = _hint(exc)
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        jitter = tenacity.wait_random_exponential(multiplier=self.initial, max=self.maximum)(state)
        return max(0.0, min(jitter, deadline - self.clock()))

    def exhausted(self, state: tenacity.RetryCallState, deadline: float) -> bool:
        """Stop at the deadline, or now when the pause asked for would end past it."""
        left = deadline - self.clock()
        return left <= 0 or state.upcoming_sleep > left + 1e-3

    def retrying(self, deadline: float, *, sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
        """A retryer for blocking calls that gives up at `deadline` (a `clock` value), re-raising the last error."""
        return tenacity.Retrying(
            sleep=sleep,
            retry=tenacity.retry_if_exception(retryable),
            wait=lambda state: self.pause(state, deadline),
            stop=lambda state: self.exhausted(state, deadline),
            before_sleep=_log_retry,
            reraise=True,
        )

    def aretrying(
        self, deadline: float, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> tenacity.AsyncRetrying:
        """Like `retrying`, for coroutines."""
        return tenacity.AsyncRetrying(
            sleep=sleep,
            retry=tenacity.retry_if_exception(retryable),
            wait=lambda state: self.pause(state, deadline),
            stop=lambda state: self.exhausted(state, deadline),
            before_sleep=_log_retry,
            reraise=True,
        )


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    error = describe(exc) if exc is not None else "?"
    log.info("retrying in %.2fs (try %d failed: %s)", state.upcoming_sleep, state.attempt_number, error)
