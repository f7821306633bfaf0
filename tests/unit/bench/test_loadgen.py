"""The open-loop schedule, the completion log and both load loops, against an in-process fake."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bench.loadgen import CompletionLog, closed_loop, join_latencies, open_loop, schedule


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    assert schedule(rate=4, duration=1, limit=100) == [0.0, 0.25, 0.5, 0.75]


def test_schedule_is_bounded_by_the_limit() -> None:
    assert len(schedule(rate=1_000_000, duration=60, limit=500)) == 500


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (10, 0), (-1, 1)])
def test_schedule_refuses_nonpositive_inputs(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        schedule(rate, duration, 10)


def test_join_keeps_only_completed_keys_and_the_last_completion() -> None:
    latencies, last = join_latencies({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.5, "c": 3.25, "x": 9.0})
    assert sorted(latencies) == [0.25, 0.5]
    assert last == 3.25


def test_completion_log_counts_keys_completed_before_they_were_expected() -> None:
    clock = itertools.count(10.0)
    log = CompletionLog(clock=lambda: float(next(clock)))
    log.complete("early")
    log.complete("early")  # a duplicate observation keeps the first time
    log.expect(["early", "late"])
    assert log.pending == 1
    log.complete("late")
    assert log.pending == 0
    assert log.snapshot() == {"early": 10.0, "late": 12.0}


class FakeSystem:
    """Completes each job `service_s` after submit; a submit itself takes `submit_s`."""

    def __init__(self, service_s: float | None = 0.0, submit_s: float = 0.0) -> None:
        self.log = CompletionLog()
        self.service_s, self.submit_s = service_s, submit_s

    async def submit(self, index: int) -> str:
        if self.submit_s:
            await asyncio.sleep(self.submit_s)
        key = f"job-{index}"
        if self.service_s is not None:  # None: the job never completes
            asyncio.get_running_loop().call_later(self.service_s, self.log.complete, key)
        return key


async def test_open_loop_completes_every_job_of_a_fast_system() -> None:
    system = FakeSystem(service_s=0.001)
    result = await open_loop(system.submit, system.log, rate=500, duration=0.1, max_jobs=1_000, drain_timeout=2)
    assert (result.planned, result.submitted, result.completed, result.failed) == (50, 50, 50, 0)
    assert result.offered == 500
    assert max(result.latencies) < 0.5


async def test_open_loop_measures_from_the_schedule_so_a_slow_sender_shows_as_latency() -> None:
    # One submit at a time, each 10 ms, offered every 1 ms: the sender falls behind and the
    # latency of the last job includes all the time it waited for its turn.
    system = FakeSystem(submit_s=0.01)
    result = await open_loop(
        system.submit, system.log, rate=1_000, duration=0.02, max_jobs=100, drain_timeout=2, max_in_flight=1
    )
    assert result.completed == 20
    assert max(result.latencies) > 0.15  # ~20 x 10 ms of queueing, not the 10 ms a submit took


async def test_lost_jobs_are_counted_and_waiting_is_bounded() -> None:
    system = FakeSystem(service_s=None)
    result = await open_loop(system.submit, system.log, rate=100, duration=0.05, max_jobs=10, drain_timeout=0.05)
    assert result.submitted == 5
    assert result.completed == 0
    assert result.throughput is None


async def test_failed_submits_are_counted_not_raised() -> None:
    async def broken(index: int) -> str:
        raise ConnectionError("down")

    result = await open_loop(broken, CompletionLog(), rate=100, duration=0.03, max_jobs=10, drain_timeout=0.05)
    assert (result.planned, result.submitted, result.failed) == (3, 0, 3)


async def test_closed_loop_reports_throughput_over_all_jobs() -> None:
    system = FakeSystem(service_s=0.001)
    result = await closed_loop(system.submit, system.log, count=200, timeout=5)
    assert result.completed == 200
    assert result.offered is None
    assert result.throughput is not None
    assert result.throughput > 200
