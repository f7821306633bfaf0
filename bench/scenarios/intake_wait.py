"""Scenario "intake-wait": `POST /v1/jobs` with `Prefer: wait=5` → 200 with the final status (sync-if-fast).

The intake, the processor (with `jobrelay.processor.demo`) and the projector run as in
"jobrelay-http" (`bench.jobrelay_stack`). An httpx client POSTs `demo.echo` jobs open loop at
`RATE`/s, each with `Prefer: wait=5`; a job counts as done when its POST answered 200 with the job
succeeded, and its latency runs from its scheduled send time to that answer: intake → Kafka →
processor (outcome in a transaction) → Kafka → the intake's job-completed reader → client. The
same load without the header (202 at once) is the second row, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bench.jobrelay_kit import http_client
from bench.jobrelay_stack import stack
from bench.loadgen import CompletionLog, LoadResult, Submit, open_loop
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.stats import summarize
from bench.topics import bench_topics

__all__ = ["SCENARIO", "IntakeWaitScenario"]

NAME = "intake-wait"
RATE = 200.0  # jobs/s offered
CONNECTIONS = 64  # each request is held for the job's run: more connections than the 202 path needs
WARMUP_JOBS = 50
CASES = (("POST Prefer: wait=5 → 200", "wait=5", 200), ("POST → 202 (no Prefer)", None, 202))


def _submit(
    http: httpx.AsyncClient, url: str, prefer: str | None, expect: int, log: CompletionLog
) -> tuple[Submit, Counter[int]]:
    """Submit = POST a demo.echo job; done (in `log`) when the answer has the status `expect`."""
    headers = {"Prefer": prefer} if prefer else {}
    codes: Counter[int] = Counter()

    async def submit(index: int) -> str:
        body = json.dumps({"type": "demo.echo", "payload": {"n": index}}).encode()
        response = await http.post(url, content=body, headers={"content-type": "application/json", **headers})
        codes[response.status_code] += 1
        job_id: str = response.json()["id"]
        if response.status_code == expect and (expect != 200 or response.json()["status"] == "succeeded"):
            log.complete(job_id)
        return job_id

    return submit, codes


async def _until_watching(http: httpx.AsyncClient, intake: str) -> None:
    """Wait until the intake reads job-completed (before that it answers every POST 202)."""
    deadline = time.monotonic() + 60
    while (await http.get(f"{intake}/readyz")).json().get("completions") != "watching":
        if time.monotonic() > deadline:
            raise TimeoutError("the intake never read job-completed")
        await asyncio.sleep(0.1)


def _row(case: str, run: int, result: LoadResult, codes: Counter[int], keep_up_p99_ms: float) -> Measurement:
    stats = summarize(result.latencies)
    kept_up = result.completed == result.planned and stats is not None and stats.p99 <= keep_up_p99_ms
    answers = ", ".join(f"{count} x {code}" for code, count in sorted(codes.items()))
    return Measurement(NAME, case, "subject", "open", run, result.throughput, stats, offered=RATE,
                       completed=result.completed, lost=result.planned - result.completed, kept_up=kept_up,
                       notes=f"demo.echo over HTTP/1.1 keep-alive ({CONNECTIONS} connections, httpx); "
                             f"latency from the scheduled send to the answer; answers: {answers}")  # fmt: skip


class IntakeWaitScenario:
    """POST with Prefer: wait → 200 latency, next to the plain 202 at the same load."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics, the three services and a client, for all runs; everything stopped on exit."""
        handlers = "bench.noop,jobrelay.processor.demo"
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}wait.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp), intake=True, handlers=handlers) as services,
        ):
            assert services.intake is not None  # noqa: S101 - asked for above
            url = f"{services.intake.url}/v1/jobs"
            async with http_client(CONNECTIONS) as http:
                await _until_watching(http, services.intake.url)
                warmup, _ = _submit(http, url, "wait=5", 200, CompletionLog())
                await asyncio.gather(*(warmup(i) for i in range(WARMUP_JOBS)))

                async def run_once(run: int) -> list[Measurement]:
                    plan, rows = ctx.plan, []
                    for case, prefer, expect in CASES:
                        ctx.log(f"{NAME} run {run}: {case} at {RATE:g}/s for {plan.open_duration:g}s")
                        log = CompletionLog()
                        submit, codes = _submit(http, url, prefer, expect, log)
                        result = await open_loop(submit, log, rate=RATE, duration=plan.open_duration,
                                                 max_jobs=plan.max_jobs_per_step, drain_timeout=plan.drain_timeout,
                                                 max_in_flight=CONNECTIONS)  # fmt: skip
                        rows.append(_row(case, run, result, codes, plan.keep_up_p99_ms))
                    return rows

                yield run_once


SCENARIO = IntakeWaitScenario()
