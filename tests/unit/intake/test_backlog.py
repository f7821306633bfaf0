"""The backlog estimate behind admission control and the 202's Retry-After (pure arithmetic)."""

from __future__ import annotations

from jobrelay.intake.backlog import Backlog, next_drain_rate


def test_an_idle_interval_is_no_sample_of_the_drain_rate() -> None:
    # Nothing was waiting at the last measurement: the offsets moved with arrivals, not capacity.
    assert next_drain_rate(500.0, (1_000, 10.0, 0), 1_001, 11.0) == 500.0
    assert next_drain_rate(0.0, (1_000, 10.0, 0), 1_000, 11.0) == 0.0


def test_an_interval_that_began_with_a_backlog_samples_it() -> None:
    first = next_drain_rate(0.0, (1_000, 10.0, 5_000), 1_400, 12.0)
    assert first == 200.0  # the first sample sets the rate
    stuck = next_drain_rate(first, (1_400, 12.0, 4_600), 1_400, 13.0)
    assert 0 < stuck < first  # no progress with work waiting pulls it down, smoothed


def test_a_handful_in_flight_is_not_a_queue_for_the_202() -> None:
    in_flight = Backlog(records=3, drain_per_s=0.005, at=0.0)
    assert in_flight.poll_hint_s(100) is None  # the 202 keeps poll_after_s, not 3 / 0.005 s
    queue = Backlog(records=2_000, drain_per_s=100.0, at=0.0)
    assert queue.poll_hint_s(100) == 20
    stalled = Backlog(records=2_000, drain_per_s=0.0, at=0.0)
    assert stalled.poll_hint_s(100) == 30  # nothing drains: ask again in a while
    assert Backlog(records=10**9, drain_per_s=1.0, at=0.0).wait_s() == 300  # bounded
