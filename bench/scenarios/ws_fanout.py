"""Scenario "ws-fanout": jobs x WebSocket subscribers, and the projector's CPU per delivered update.

The processor and the projector run as in "jobrelay-publisher" (`bench.jobrelay_stack`).
`SUBSCRIBERS` WebSockets connect to the projector's `/v1/ws` and subscribe to every job of the
tenant (`{"type": "subscribe", "all": true}`); then `bench.noop` jobs are published with the SDK's
`JobPublisher` at `RATE` jobs/s (open loop). Each subscriber sees every job's changes; the latency
is from a job's publish to a subscriber's `status` message saying `succeeded` (every pair of job
and subscriber), and the projector's CPU (user + system, from /proc via psutil) over the run is
divided by the status messages delivered. Full run 1,000 jobs x 20 subscribers, quick 200 x 5.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from bench.jobrelay_kit import NOOP_TYPE
from bench.jobrelay_stack import stack
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.stats import summarize
from bench.topics import bench_topics
from jobrelay.sdk.publisher import JobPublisher

__all__ = ["SCENARIO", "WsFanoutScenario"]

NAME = "ws-fanout"
RATE = 200.0
FULL, QUICK = (1_000, 20), (200, 5)  # (jobs, subscribers)


def _cpu_s(pid: int) -> float:
    import psutil  # type: ignore[import-untyped]  # bench extra, no stubs

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _subscriber(
    connection: ClientConnection, published: dict[str, float], jobs: int, seen: list[float], counts: list[int]
) -> None:
    """Read status messages until `jobs` jobs succeeded; the latency of each from its publish."""
    done: set[str] = set()
    while len(done) < jobs:
        message = json.loads(await connection.recv())
        if message["type"] != "status":
            continue
        counts[0] += 1
        job = message["job"]
        if message["status"] == "succeeded" and job not in done:
            done.add(job)
            sent = published.get(job)
            if sent is not None:
                seen.append(time.monotonic() - sent)


class WsFanoutScenario:
    """Many jobs, many WebSocket subscribers to all of them."""

    name = NAME

    def missing(self) -> str | None:
        """psutil (the bench extra) reads the projector's CPU time."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            return "psutil is missing: pip install -e '.[dev,bench]'"
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics, the processor and the projector, and a publisher, for all runs."""
        jobs, subscribers = QUICK if ctx.quick else FULL
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}wsfan.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp)) as services,
        ):
            url = services.projector.url.replace("http", "ws", 1) + "/v1/ws"
            async with JobPublisher.connect(ctx.kafka, topics) as publisher:

                async def run_once(run: int) -> list[Measurement]:
                    ctx.log(f"{NAME} run {run}: {jobs} jobs at {RATE:g}/s x {subscribers} WebSocket subscribers")
                    async with AsyncExitStack() as connections:
                        sockets = [
                            await connections.enter_async_context(connect(url, max_size=2**22))
                            for _ in range(subscribers)
                        ]
                        for socket in sockets:
                            await socket.recv()  # ready (the bench stack runs behind a "gateway": no key)
                            await socket.send(json.dumps({"type": "subscribe", "all": True}))
                        published: dict[str, float] = {}
                        latencies: list[float] = []
                        counts = [0]
                        readers = [
                            asyncio.create_task(_subscriber(s, published, jobs, latencies, counts)) for s in sockets
                        ]
                        cpu_before, clock = _cpu_s(services.projector.pid), time.monotonic()
                        for n in range(jobs):
                            await asyncio.sleep(max(0.0, clock + n / RATE - time.monotonic()))
                            sent = time.monotonic()
                            accepted = await publisher.publish(NOOP_TYPE, {"n": n})
                            published[accepted.id] = sent
                        await asyncio.wait_for(asyncio.gather(*readers), 120)
                        elapsed = time.monotonic() - clock
                        cpu = _cpu_s(services.projector.pid) - cpu_before
                    delivered = counts[0]
                    per_update_us = cpu / delivered * 1e6 if delivered else float("nan")
                    return [
                        Measurement(NAME, f"publish→WS status succeeded ({jobs}x{subscribers})", "subject", "open",
                                    run, delivered / elapsed, summarize(latencies), offered=RATE,
                                    completed=len(latencies), lost=jobs * subscribers - len(latencies),
                                    notes=f"throughput = status messages delivered/s; projector CPU "
                                          f"{per_update_us:.0f} µs per delivered update "
                                          f"({delivered} updates, {cpu:.2f} s CPU)")
                    ]  # fmt: skip

                yield run_once


SCENARIO = WsFanoutScenario()
