"""Which offered loads are tried, and what "kept up" means."""

from __future__ import annotations

from bench.ladder import Labels, kept_up, ladder_rates, saturation_count, to_row
from bench.loadgen import LoadResult
from bench.scenario import Plan


def test_fixed_rates_then_doubling_up_to_the_max() -> None:
    assert ladder_rates(Plan(open_rates=(200, 500, 1_000), max_rate=5_000)) == [200, 500, 1_000, 2_000, 4_000]


def test_fixed_rates_above_the_max_are_dropped() -> None:
    assert ladder_rates(Plan(open_rates=(200, 500, 1_000), max_rate=600)) == [200, 500]


def _result(completed: int, latency_s: float, elapsed: float, planned: int = 100) -> LoadResult:
    return LoadResult(100.0, planned, planned, 0, (latency_s,) * completed, elapsed)


def test_kept_up_needs_every_job_the_rate_and_a_bounded_p99() -> None:
    plan = Plan(keep_up_p99_ms=1_000)
    assert kept_up(_result(100, 0.01, 1.0), plan)
    assert not kept_up(_result(99, 0.01, 1.0), plan)  # a job never completed
    assert not kept_up(_result(100, 0.01, 1.5), plan)  # 67 jobs/s achieved of 100 offered
    assert not kept_up(_result(100, 2.0, 1.0), plan)  # p99 of 2 s


def test_rows_carry_latency_only_for_the_open_loop() -> None:
    labels = Labels("peer", "celery", "peer")
    closed = LoadResult(None, 100, 100, 0, (0.5,) * 100, 2.0)
    row = to_row(labels, 1, closed, Plan())
    assert (row.mode, row.latency, row.throughput, row.kept_up) == ("saturation", None, 50.0, None)
    opened = to_row(labels, 2, _result(90, 0.01, 1.0), Plan())
    assert (opened.mode, opened.lost, opened.kept_up) == ("open", 10, False)
    assert opened.latency is not None


def test_saturation_lasts_about_the_planned_seconds_within_bounds() -> None:
    plan = Plan(saturation_s=10, min_saturation_jobs=1_000, max_jobs_per_step=50_000)
    assert saturation_count(400.0, plan) == 4_000
    assert saturation_count(20.0, plan) == 1_000
    assert saturation_count(1e6, plan) == 50_000
    assert saturation_count(None, plan) == 1_000


def test_every_plan_has_the_fixed_offered_loads_of_the_issue() -> None:
    for plan in (Plan(), Plan.quick()):
        assert ladder_rates(plan)[:3] == [200, 500, 1_000]
