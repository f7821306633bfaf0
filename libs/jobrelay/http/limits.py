"""Rate limits and caps on open streams, per caller, answered as 429 (or 503) with a computed Retry-After.

- `Buckets`: one token bucket per key (a tenant, an API key): `rate` tokens per second up to
  `burst`; a request takes one, or is refused with the seconds until the next token is there
  (never 0). Rate 0 turns the limit off.
- `StreamSlots`: concurrent long-polls and streams, per tenant and in total: past the tenant's
  cap 429, past the total 503 (the service is busy for everyone); a slot frees when the stream
  ends.

Both live in the process: with several replicas each one limits on its own (documented in the
README), which bounds the whole by replicas times the limit.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from jobrelay.http.problems import TYPE_BASE, Problem

__all__ = ["Buckets", "StreamSlots", "TokenBucket"]

_MAX_KEYS = 100_000  # buckets kept (the least recently used is dropped first; it is refilled anyway)


class TokenBucket:
    """`rate` tokens per second, at most `burst` banked."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.tokens, self.at = self.burst, now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is there (nothing taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Buckets:
    """A token bucket per key, made on first use."""

    def __init__(self, rate: float, burst: float, *, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.what, self.clock = rate, burst, what, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> None:
        """Take a token for `key`, or raise a 429 Problem whose Retry-After is when the next one comes."""
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > _MAX_KEYS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(
                429,
                "Too many requests",
                f"{self.what} is limited to {self.rate:g} per second (bursts of {self.burst:g}); retry in {seconds}s",
                type_=f"{TYPE_BASE}rate-limited",
                headers={"Retry-After": str(seconds)},
                limit=self.what,
            )


class StreamSlots:
    """Counts open long-polls and streams per tenant and in total."""

    def __init__(self, per_tenant: int, total: int) -> None:
        self.per_tenant, self.total = per_tenant, total
        self._open: dict[str, int] = {}
        self._count = 0

    def open(self, tenant: str) -> int:
        """Streams open now for `tenant`."""
        return self._open.get(tenant, 0)

    @contextmanager
    def slot(self, tenant: str) -> Iterator[None]:
        """Hold a slot while the block runs: 503 past the total, 429 past the tenant's cap."""
        self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)

    def acquire(self, tenant: str) -> None:
        """Take a slot (503 past the total, 429 past the tenant's cap); `release` gives it back."""
        if self.total > 0 and self._count >= self.total:
            raise Problem(
                503,
                "Too many open streams",
                f"the service holds its limit of {self.total} open streams; retry shortly",
                type_=f"{TYPE_BASE}streams-full",
                headers={"Retry-After": "5"},
            )
        if self.per_tenant > 0 and self.open(tenant) >= self.per_tenant:
            raise Problem(
                429,
                "Too many open streams",
                f"tenant {tenant} already holds its limit of {self.per_tenant} open streams and long-polls",
                type_=f"{TYPE_BASE}rate-limited",
                headers={"Retry-After": "5"},
                limit="open streams",
            )
        self._open[tenant] = self.open(tenant) + 1
        self._count += 1

    def release(self, tenant: str) -> None:
        """Give back a slot `acquire` took."""
        self._count -= 1
        left = self._open[tenant] - 1
        if left:
            self._open[tenant] = left
        else:
            del self._open[tenant]
