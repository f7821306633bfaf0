"""When to try a failed delivery again: the retry schedule with jitter, and the receiver's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_AFTER_STATUSES", "next_delay", "parse_retry_after"]

# The statuses on which a receiver's Retry-After is honoured (RFC 9110: "slow down" and "come back later").
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # HTTP-dates are GMT by definition
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def next_delay(
    attempts: int,
    schedule: Sequence[float],
    *,
    jitter: float,
    retry_after: float | None = None,
    max_retry_after: float = 36000.0,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None when the schedule is exhausted.

    The scheduled delay is scaled by a random factor in [1 - jitter, 1 + jitter] so retries of many
    deliveries that failed together spread out; a Retry-After (capped) is a lower bound.
    """
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (1 + jitter * (2 * rng() - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay
