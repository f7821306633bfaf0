"""Measure one system the same way every time: warm up, saturate, then climb the offered loads.

Used by the raw Kafka loop (limit), Celery (peer) and, once the services land, jobrelay: the
rows are comparable because the code that produced them is the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.loadgen import LoadResult, Target, closed_loop, open_loop
from bench.scenario import Measurement, Plan, Role
from bench.stats import summarize

__all__ = ["KEEP_UP_FRACTION", "Labels", "climb", "kept_up", "ladder_rates", "saturation_count", "to_row"]

KEEP_UP_FRACTION = 0.9  # achieved / offered below this means the queue is growing


@dataclass(frozen=True, slots=True)
class Labels:
    """Where a system's rows go in the table."""

    scenario: str
    case: str
    role: Role
    reference: bool = False  # its open-loop rows are the latency limit (see bench.ratios)


def ladder_rates(plan: Plan) -> list[float]:
    """The fixed offered loads, then doubling the last one up to `plan.max_rate`."""
    rates = [r for r in plan.open_rates if r <= plan.max_rate]
    rate = rates[-1] * 2 if rates else 0.0
    while rates and rate <= plan.max_rate:
        rates.append(rate)
        rate *= 2
    return rates


def saturation_count(warmup_throughput: float | None, plan: Plan) -> int:
    """Jobs for the closed loop: `plan.saturation_s` seconds at the warm-up's rate, within bounds."""
    wanted = int((warmup_throughput or 0.0) * plan.saturation_s)
    return max(plan.min_saturation_jobs, min(wanted, plan.max_jobs_per_step))


def kept_up(result: LoadResult, plan: Plan) -> bool:
    """Every job completed, >= 90% of the offered rate achieved, and p99 within the plan's bound."""
    if result.offered is None or result.failed or result.completed < result.planned:
        return False
    stats = summarize(result.latencies)
    throughput = result.throughput or 0.0
    return stats is not None and throughput >= KEEP_UP_FRACTION * result.offered and stats.p99 <= plan.keep_up_p99_ms


def to_row(labels: Labels, run: int, result: LoadResult, plan: Plan, notes: str = "") -> Measurement:
    """A table row from a load result (latency only for the open loop, where it means something)."""
    is_open = result.offered is not None
    return Measurement(
        scenario=labels.scenario,
        case=labels.case,
        role=labels.role,
        mode="open" if is_open else "saturation",
        run=run,
        throughput=result.throughput,
        latency=summarize(result.latencies) if is_open else None,
        offered=result.offered,
        completed=result.completed,
        lost=result.planned - result.completed,
        kept_up=kept_up(result, plan) if is_open else None,
        notes=notes,
        reference=labels.reference and is_open,
    )


async def climb(target: Target, labels: Labels, run: int, plan: Plan) -> list[Measurement]:
    """Warm up, measure saturation (closed loop), then every fixed offered load, then higher ones
    (doubling) until one is not kept up."""
    submit, log = target.submit, target.log
    timeout = plan.saturation_s * 6 + plan.drain_timeout
    in_flight = target.max_in_flight or plan.saturation_in_flight
    warmup = await closed_loop(submit, log, count=plan.warmup_jobs, timeout=timeout, max_in_flight=in_flight)
    count = saturation_count(warmup.throughput, plan)
    saturation = await closed_loop(submit, log, count=count, timeout=timeout, max_in_flight=in_flight)
    rows = [to_row(labels, run, saturation, plan, f"closed, {count:,} jobs")]
    for rate in ladder_rates(plan):
        if log.pending:  # leftovers of an earlier step would inflate this one's latency
            await log.wait(time.perf_counter() + plan.drain_timeout)
        result = await open_loop(
            submit,
            log,
            rate=rate,
            duration=plan.open_duration,
            max_jobs=plan.max_jobs_per_step,
            drain_timeout=plan.drain_timeout,
            max_in_flight=target.max_in_flight or 10_000,
        )
        row = to_row(labels, run, result, plan, f"open, {plan.open_duration:g} s")
        rows.append(row)
        if not row.kept_up and rate >= max(plan.open_rates):
            break
    return rows
