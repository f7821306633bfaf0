"""Scenario "intake-only": the intake alone, POST /v1/jobs → 202 (after Kafka's acks=all).

Only the intake runs (nothing consumes job-requested); a job counts as done when its 202
arrives, so the ladder's saturation row is requests/s and its open-loop rows are the 202
latency at each offered load, measured from the scheduled send time.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.jobrelay_kit import http_submit, service
from bench.jobrelay_stack import COMMON_ENV
from bench.ladder import Labels, climb
from bench.loadgen import CompletionLog, Submit, Target
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.scenarios.jobrelay_http import HTTP_CONNECTIONS, http_client, with_connections
from bench.topics import bench_topics

__all__ = ["SCENARIO", "IntakeOnlyScenario", "done_on_return"]

NAME = "intake-only"


def done_on_return(submit: Submit, log: CompletionLog) -> Submit:
    """`submit`, with each key marked complete the moment the submit returns (its 202)."""

    async def submit_and_mark(index: int) -> str:
        key = await submit(index)
        log.complete(key)
        return key

    return submit_and_mark


class IntakeOnlyScenario:
    """202 latency and requests/s of one intake process."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics and the intake for all runs; stopped by PID on exit."""
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}intake.", ctx.partitions) as topics,
        ):
            env = {**COMMON_ENV, "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(Path(tmp) / "keys.sqlite3")}
            with service("intake", ctx.kafka, topics, Path(tmp), env) as intake:
                ctx.log(f"{NAME}: intake {intake.url}")
                async with http_client() as client:
                    log = CompletionLog()
                    target = Target(done_on_return(http_submit(client, intake.url), log), log, HTTP_CONNECTIONS)
                    labels = Labels(NAME, "POST→202", "subject")

                    async def run_once(run: int) -> list[Measurement]:
                        ctx.log(f"{NAME} run {run}")
                        return [with_connections(row) for row in await climb(target, labels, run, ctx.plan)]

                    yield run_once


SCENARIO = IntakeOnlyScenario()
