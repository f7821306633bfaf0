"""Scenario "cancel": DELETE on a running job → its status `cancelled`, as a client polling the view sees it.

The processor and the projector run as in "jobrelay-publisher" (`bench.jobrelay_stack`). Each job
is a `bench.hold` (runs until cancelled), published with the SDK's `JobPublisher`; once the view
shows it running, the clock starts, `DELETE /v1/jobs/{id}` goes to the projector (which puts the
cancel on job-requested), and a long-poll of the job's status stops the clock when it reads
`cancelled`: the path is projector → Kafka → processor (task cancelled, outcome in a transaction) →
Kafka → projector → client. `CONCURRENCY` jobs are cancelled at a time; full run 200 jobs, quick 40.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bench.jobrelay_stack import stack
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.stats import summarize
from bench.topics import bench_topics
from jobrelay.sdk.publisher import JobPublisher

__all__ = ["SCENARIO", "CancelScenario"]

NAME = "cancel"
FULL_JOBS, QUICK_JOBS = 200, 40
CONCURRENCY = 8
HOLD_TYPE = "bench.hold"  # bench.noop.hold


async def _until(http: httpx.AsyncClient, url: str, status: str, deadline: float) -> float:
    """Long-poll `url` until the job shows `status`; the monotonic time it was seen."""
    headers: dict[str, str] = {}
    while time.monotonic() < deadline:
        response = await http.get(url, headers=headers)
        if response.status_code == 200:
            if response.json()["status"] == status:
                return time.monotonic()
            headers = {"If-None-Match": response.headers["etag"], "Prefer": "wait=5"}
        elif response.status_code not in (304, 404, 503):
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    raise TimeoutError(f"{url} never showed {status}")


async def _cancel_one(http: httpx.AsyncClient, publisher: JobPublisher, base: str) -> float:
    """Seconds from the DELETE to the first read of `cancelled`."""
    published = await publisher.publish(HOLD_TYPE, {"seconds": 120})
    url = f"{base}/v1/jobs/{published.id}"
    await _until(http, url, "running", time.monotonic() + 60)
    started = time.monotonic()
    response = await http.delete(url)
    if response.status_code != 202:
        raise RuntimeError(f"DELETE {url}: {response.status_code} {response.text[:200]}")
    return await _until(http, url, "cancelled", started + 60) - started


class CancelScenario:
    """Cancel running jobs and time until the view shows them cancelled."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics, the processor and the projector, and a publisher, for all runs."""
        jobs = QUICK_JOBS if ctx.quick else FULL_JOBS
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}cancel.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp)) as services,
        ):
            base = services.projector.url
            async with (
                JobPublisher.connect(ctx.kafka, topics) as publisher,
                httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http,
            ):

                async def run_once(run: int) -> list[Measurement]:
                    ctx.log(f"{NAME} run {run}: {jobs} jobs, {CONCURRENCY} at a time")
                    clock = time.monotonic()
                    latencies: list[float] = []
                    for start in range(0, jobs, CONCURRENCY):
                        batch = range(start, min(jobs, start + CONCURRENCY))
                        latencies += await asyncio.gather(*(_cancel_one(http, publisher, base) for _ in batch))
                    elapsed = time.monotonic() - clock
                    return [
                        Measurement(NAME, "cancel→CANCELLED visible", "subject", "latency", run, jobs / elapsed,
                                    summarize(latencies), completed=len(latencies), lost=jobs - len(latencies),
                                    notes=f"DELETE on a running job → GET shows cancelled; {CONCURRENCY} at a time; "
                                          "throughput = jobs/s incl. waiting for each to run")
                    ]  # fmt: skip

                yield run_once


SCENARIO = CancelScenario()
