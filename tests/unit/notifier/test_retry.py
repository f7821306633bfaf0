"""The retry schedule: jittered delays, its end, and Retry-After as a (capped) lower bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from jobrelay.notifier.retry import next_delay, parse_retry_after
from jobrelay.notifier.settings import DEFAULT_RETRY_SCHEDULE

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("attempts", "expected"), [(1, 5.0), (2, 300.0), (6, 36000.0)])
def test_the_default_schedule_without_jitter(attempts: int, expected: float) -> None:
    assert next_delay(attempts, DEFAULT_RETRY_SCHEDULE, jitter=0.0) == expected


def test_the_schedule_ends_after_its_last_retry() -> None:
    assert next_delay(7, DEFAULT_RETRY_SCHEDULE, jitter=0.0) is None


def test_jitter_spreads_a_delay_within_its_bounds() -> None:
    assert next_delay(2, [100.0], jitter=0.2, rng=lambda: 0.0) is None
    assert next_delay(1, [100.0], jitter=0.2, rng=lambda: 0.0) == pytest.approx(80.0)
    assert next_delay(1, [100.0], jitter=0.2, rng=lambda: 1.0) == pytest.approx(120.0)


def test_retry_after_is_a_lower_bound_capped_by_the_setting() -> None:
    assert next_delay(1, [5.0], jitter=0.0, retry_after=60.0) == 60.0
    assert next_delay(1, [5.0], jitter=0.0, retry_after=1.0) == 5.0
    assert next_delay(1, [5.0], jitter=0.0, retry_after=10**9, max_retry_after=3600.0) == 3600.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (format_datetime(NOW + timedelta(minutes=2), usegmt=True), 120.0),
        (format_datetime(NOW - timedelta(minutes=2), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds
