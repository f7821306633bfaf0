"""The HTTP ladder's arithmetic: latency from the due time, failures, ids, CPU notes. Pure code."""

from __future__ import annotations

import time

import pytest

from bench.http_ladder import StepCost, answered_ends, completion_ends, cost_note, job_ids, load_result
from bench.httpgen import Hit
from bench.loadgen import CompletionLog


def _hit(seq: int, due: float, sent: float | None = None, code: int = 202, job_id: str = "", error: str = "") -> Hit:
    sent = due if sent is None else sent
    return Hit(seq, due, sent, sent + 0.002, code, job_id or f"job-{seq}", error)


def test_latency_runs_from_the_due_time_so_a_late_send_counts() -> None:
    hits = [_hit(0, 100.0), _hit(1, 100.01, sent=100.5)]  # the second left 490 ms late
    result = load_result(hits, {0: 100.003, 1: 100.503}, rate=100, planned=2)
    assert result.latencies == pytest.approx((0.003, 0.493))
    assert result.elapsed == pytest.approx(0.503)
    assert (result.planned, result.submitted, result.failed, result.completed) == (2, 2, 0, 2)


def test_failed_and_unanswered_requests_are_counted_and_the_plan_is_kept() -> None:
    hits = [_hit(0, 1.0), _hit(1, 1.1, code=503), _hit(2, 1.2, code=0, error="connection refused")]
    result = load_result(hits, {0: 1.01}, rate=10, planned=5)  # the generator sent 3 of the 5 due
    assert (result.planned, result.submitted, result.failed, result.completed) == (5, 1, 2, 1)


def test_nothing_completed_means_no_throughput() -> None:
    result = load_result([_hit(0, 1.0)], {}, rate=None, planned=1)
    assert result.throughput is None


def test_job_ids_come_only_from_accepted_requests() -> None:
    hits = [_hit(0, 1.0, job_id="a"), _hit(1, 1.0, code=500, job_id="b"), _hit(2, 1.0, code=202, error="x")]
    assert job_ids(hits) == {0: "a"}


async def test_the_intake_alone_is_done_at_its_202() -> None:
    hits = [_hit(0, 1.0), _hit(1, 1.0, code=429)]
    assert await answered_ends(hits, timeout=0) == {0: pytest.approx(1.002)}


async def test_completion_ends_join_ids_with_the_completion_log() -> None:
    log = CompletionLog(clock=time.time)
    log.complete("a")
    ends = await completion_ends(log)([_hit(0, 1.0, job_id="a"), _hit(1, 1.0, job_id="never")], 0.01)
    assert list(ends) == [0]
    assert log.pending == 1


def test_cost_note_gives_both_cpu_figures_and_the_share() -> None:
    note = cost_note(StepCost(requests=1_000, generator_s=0.02, server_s=0.4))
    assert note == "httpgen 20.0 µs CPU/req = 5.0 % of intake's 400 µs"
