"""Scenario "jobrelay-http": no-op jobs POSTed to the intake, measured to their JobCompleted.

The intake, the processor and the projector run as three processes (`bench.jobrelay_stack`);
the load generator POSTs `bench.noop` jobs over HTTP/1.1 keep-alive connections and a
read_committed consumer of job-completed marks each job done as a downstream consumer sees it.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from bench.jobrelay_kit import completed_observer, http_submit
from bench.jobrelay_stack import SETTINGS_NOTE, stack, with_settings
from bench.ladder import Labels, climb
from bench.loadgen import CompletionLog, Target
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics

__all__ = ["HTTP_CONNECTIONS", "SCENARIO", "JobrelayHttpScenario", "http_client"]

NAME = "jobrelay-http"


# Connections to the intake, open and closed loop alike (more requests wait in the client's pool,
# their latency still counted from the scheduled send). The load generator is one Python process
# with httpx, whose CPU per request grows with the pool: measured on 2 cores against one intake,
# 8 connections gave 880 req/s (client 0.8 ms CPU per request), 16 gave 650, 32 only 335 with the
# client at a full core (2.9 ms per request) and the intake at 0.4: at 32 the bench measured itself.
HTTP_CONNECTIONS = 8


def http_client(connections: int = HTTP_CONNECTIONS) -> httpx.AsyncClient:
    """A keep-alive client with at most `connections` connections."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


def with_connections(row: Measurement) -> Measurement:
    """The row, the saturation one noting the HTTP connection cap."""
    if row.mode != "saturation":
        return row
    return replace(row, notes=f"{row.notes}, {HTTP_CONNECTIONS} connections")


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
            ctx.log(f"{NAME}: intake {services.intake.url}, processor pid {services.processor.pid}; {SETTINGS_NOTE}")
            async with http_client() as client:
                log = CompletionLog()
                async with completed_observer(ctx.kafka, topics, log):
                    target = Target(http_submit(client, services.intake.url), log, HTTP_CONNECTIONS)
                    labels = Labels(NAME, "POST→completed", "subject")

                    async def run_once(run: int) -> list[Measurement]:
                        ctx.log(f"{NAME} run {run}")
                        rows = await climb(target, labels, run, ctx.plan)
                        return with_settings([with_connections(row) for row in rows])

                    yield run_once


SCENARIO = JobrelayHttpScenario()
