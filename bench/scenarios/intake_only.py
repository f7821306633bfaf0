"""Scenario "intake-only": the intake alone, POST /v1/jobs → 202 (after Kafka's acks=all).

Only the intake runs (nothing consumes job-requested); a job counts as done when its 202
arrives, so the ladder's saturation row is requests/s and its open-loop rows are the 202
latency at each offered load, measured from the scheduled send time. httpgen drives it, as in
"jobrelay-http" (`bench.http_ladder`).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench import httpgen
from bench.http_ladder import HttpSystem, answered_ends, http_climb
from bench.jobrelay_kit import service
from bench.jobrelay_stack import COMMON_ENV
from bench.ladder import Labels
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.scenarios.jobrelay_http import NOOP_BODY, provisioned
from bench.topics import bench_topics

__all__ = ["SCENARIO", "IntakeOnlyScenario"]

NAME = "intake-only"


class IntakeOnlyScenario:
    """202 latency and requests/s of one intake process."""

    name = NAME

    def missing(self) -> str | None:
        """httpgen, or a C compiler to build it."""
        return httpgen.missing()

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """httpgen, topics and the intake for all runs; stopped by PID on exit."""
        binary = await provisioned(ctx)
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}intake.", ctx.partitions) as topics,
        ):
            env = {**COMMON_ENV, "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(Path(tmp) / "keys.sqlite3")}
            with service("intake", ctx.kafka, topics, Path(tmp), env) as intake:
                ctx.log(f"{NAME}: intake {intake.url}")
                system = HttpSystem(f"{intake.url}/v1/jobs", NOOP_BODY, intake.pid, answered_ends)
                labels = Labels(NAME, "POST→202", "subject")

                async def run_once(run: int) -> list[Measurement]:
                    ctx.log(f"{NAME} run {run}")
                    return await http_climb(binary, system, labels, run, ctx.plan, Path(tmp) / "httpgen")

                yield run_once


SCENARIO = IntakeOnlyScenario()
