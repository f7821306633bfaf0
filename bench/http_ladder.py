"""The ladder of `bench.ladder` for an HTTP system, driven by httpgen (compiled, open loop).

The steps are the same as every other system's: warm-up (not reported), saturation (httpgen with
`SATURATION_CONNECTIONS` requests in flight for `plan.saturation_s` seconds), then the open-loop
offered loads (`ladder_rates`) until one is not kept up. Each job's latency runs from its *due*
send time (request i of a step at `rate`/s is due at start + i/rate), so a generator or a
connection that falls behind shows as latency (no coordinated omission). httpgen stamps requests
with the wall clock, so whatever marks completions (`Ends`) must use the wall clock too
(`time.time`, e.g. `CompletionLog(clock=time.time)`).

Every row's notes carry the generator's CPU per request (httpgen's user+system CPU ÷ requests,
from wait4) beside the server's (the intake's process CPU over the same step ÷ requests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.httpgen import Attack, AttackResult, Hit, attack
from bench.ladder import Labels, ladder_rates, to_row
from bench.loadgen import CompletionLog, LoadResult
from bench.profiling import tree_cpu_seconds
from bench.scenario import Measurement, Plan

__all__ = [
    "OPEN_CONNECTIONS",
    "SATURATION_CONNECTIONS",
    "Ends",
    "HttpSystem",
    "StepCost",
    "answered_ends",
    "completion_ends",
    "cost_note",
    "http_climb",
    "job_ids",
    "load_result",
]

# Saturation: this many requests in flight, one per keep-alive connection.
SATURATION_CONNECTIONS = 64
# Open loop: requests due while every connection is busy wait for one, and the wait counts (their
# latency runs from the due time); at 1,000/s and 5 ms a request, about 5 are busy.
OPEN_CONNECTIONS = 64
ACCEPTED = 202

# When each hit's job was done (wall-clock seconds, by seq), waiting at most `timeout` seconds.
Ends = Callable[[Sequence[Hit], float], Awaitable[Mapping[int, float]]]


@dataclass(frozen=True, slots=True)
class HttpSystem:
    """An HTTP system as the ladder sees it: what to POST where, whose CPU to count, when jobs end."""

    url: str
    body: bytes
    server_pid: int  # the process (with its children) whose CPU per request goes in the notes
    ends: Ends
    server: str = "intake"
    headers: tuple[str, ...] = ()  # sent with every request


@dataclass(frozen=True, slots=True)
class StepCost:
    """CPU per request of one step: the load generator's and the server's."""

    requests: int
    generator_s: float
    server_s: float

    @property
    def generator_us(self) -> float:
        """httpgen's CPU µs per request."""
        return self.generator_s / max(self.requests, 1) * 1e6

    @property
    def server_us(self) -> float:
        """The server's CPU µs per request."""
        return self.server_s / max(self.requests, 1) * 1e6


def cost_note(cost: StepCost, server: str = "intake") -> str:
    """`httpgen 9.8 µs CPU/req = 2.3 % of intake's 420 µs`."""
    share = cost.generator_us / cost.server_us * 100 if cost.server_us > 0 else float("nan")
    return f"httpgen {cost.generator_us:.1f} µs CPU/req = {share:.1f} % of {server}'s {cost.server_us:.0f} µs"


def job_ids(hits: Sequence[Hit]) -> dict[int, str]:
    """seq → the job id in each 202's body."""
    return {hit.seq: hit.job_id for hit in hits if hit.code == ACCEPTED and not hit.error and hit.job_id}


async def answered_ends(hits: Sequence[Hit], timeout: float) -> Mapping[int, float]:
    """A job is done when its 202 arrives (the intake alone)."""
    return {h.seq: h.answered for h in hits if h.code == ACCEPTED and not h.error}


def completion_ends(log: CompletionLog) -> Ends:
    """A job is done when `log` (on the wall clock) saw its id complete, e.g. its JobCompleted."""

    async def ends(hits: Sequence[Hit], timeout: float) -> Mapping[int, float]:
        ids = job_ids(hits)
        log.expect(ids.values())
        await log.wait(time.time() + timeout)
        seen = log.snapshot()
        return {seq: seen[job] for seq, job in ids.items() if job in seen}

    return ends


def load_result(hits: Sequence[Hit], ends: Mapping[int, float], rate: float | None, planned: int) -> LoadResult:
    """The step as the ladder's `LoadResult`: latency and elapsed time from each request's due time."""
    due = {h.seq: h.due for h in hits}
    latencies = tuple(max(0.0, end - due[seq]) for seq, end in ends.items() if seq in due)
    elapsed = max(ends.values()) - min(due.values()) if ends else 0.0
    accepted = sum(1 for h in hits if h.code == ACCEPTED and not h.error)
    return LoadResult(rate, max(planned, len(hits)), accepted, len(hits) - accepted, latencies, elapsed)


def _spec(system: HttpSystem, rate: float | None, duration: float) -> Attack:
    connections = SATURATION_CONNECTIONS if rate is None else OPEN_CONNECTIONS
    return Attack(system.url, system.body, duration, rate, connections, headers=system.headers)


async def _step(
    generator: Path, system: HttpSystem, workdir: Path, rate: float | None, duration: float, wait_s: float
) -> tuple[LoadResult, StepCost]:
    before = tree_cpu_seconds(system.server_pid)
    done: AttackResult = await asyncio.to_thread(attack, generator, _spec(system, rate, duration), workdir)
    cost = StepCost(len(done.hits), done.cpu_s, tree_cpu_seconds(system.server_pid) - before)
    ends = await system.ends(done.hits, wait_s)
    planned = round(rate * duration) if rate else len(done.hits)
    return load_result(done.hits, ends, rate, planned), cost


async def http_open_rows(
    generator: Path, system: HttpSystem, labels: Labels, run: int, plan: Plan, workdir: Path, rates: tuple[float, ...]
) -> list[Measurement]:
    """A short warm-up, then one open-loop row per offered load in `rates` (no saturation, no climb)."""
    await _step(generator, system, workdir, min(rates), 1.0, plan.drain_timeout)
    rows = []
    for rate in rates:
        duration = min(plan.open_duration, plan.max_jobs_per_step / rate)
        result, cost = await _step(generator, system, workdir, rate, duration, plan.drain_timeout)
        rows.append(
            to_row(labels, run, result, plan, f"httpgen open loop, {duration:g} s; {cost_note(cost, system.server)}")
        )
    return rows


async def http_climb(
    generator: Path, system: HttpSystem, labels: Labels, run: int, plan: Plan, workdir: Path
) -> list[Measurement]:
    """Warm up, saturate, then every fixed offered load and higher ones until one is not kept up."""
    saturation_wait = plan.saturation_s * 5 + plan.drain_timeout
    await _step(generator, system, workdir, None, max(0.5, plan.warmup_jobs / 500), saturation_wait)
    result, cost = await _step(generator, system, workdir, None, plan.saturation_s, saturation_wait)
    how = f"httpgen, {SATURATION_CONNECTIONS} connections, {plan.saturation_s:g} s"
    rows = [to_row(labels, run, result, plan, f"{how}, {result.planned:,} jobs; {cost_note(cost, system.server)}")]
    for rate in ladder_rates(plan):
        duration = min(plan.open_duration, plan.max_jobs_per_step / rate)
        result, cost = await _step(generator, system, workdir, rate, duration, plan.drain_timeout)
        note = f"httpgen open loop, {duration:g} s; {cost_note(cost, system.server)}"
        row = to_row(labels, run, result, plan, note)
        rows.append(row)
        if not row.kept_up and rate >= max(plan.open_rates):
            break
    return rows
