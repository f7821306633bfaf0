"""Scenario "jobrelay-http": no-op jobs POSTed to the intake, measured to their JobCompleted.

The intake, the processor and the projector run as three processes (`bench.jobrelay_stack`);
the load generator POSTs `bench.noop` jobs over HTTP/1.1 keep-alive connections and a
read_committed consumer of job-completed marks each job done as a downstream consumer sees it.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bench.jobrelay_kit import completed_observer, http_submit
from bench.jobrelay_stack import SETTINGS_NOTE, stack, with_settings
from bench.ladder import Labels, climb
from bench.loadgen import CompletionLog, Target
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics

__all__ = ["SCENARIO", "JobrelayHttpScenario", "http_client"]

NAME = "jobrelay-http"


def http_client(connections: int) -> httpx.AsyncClient:
    """A keep-alive client with enough connections for the closed loop's submits in flight."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


class JobrelayHttpScenario:
    """POST /v1/jobs → JobCompleted visible to a read_committed consumer."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics, the three services and one HTTP client for all runs; everything stopped on exit."""
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}http.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp), intake=True) as services,
        ):
            assert services.intake is not None  # noqa: S101 - asked for above
            ctx.log(f"{NAME}: intake {services.intake}, processor {services.processor}; {SETTINGS_NOTE}")
            async with http_client(ctx.plan.saturation_in_flight) as client:
                log = CompletionLog()
                async with completed_observer(ctx.kafka, topics, log):
                    target = Target(http_submit(client, services.intake), log)
                    labels = Labels(NAME, "POST→completed", "subject")

                    async def run_once(run: int) -> list[Measurement]:
                        ctx.log(f"{NAME} run {run}")
                        return with_settings(await climb(target, labels, run, ctx.plan))

                    yield run_once


SCENARIO = JobrelayHttpScenario()
