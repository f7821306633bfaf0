"""Scenario "jobrelay-http": POST /v1/jobs → JobCompleted, end to end through every service involved.

The intake, the processor and the projector run as three processes (`bench.jobrelay_stack`);
httpgen (compiled, `bench.httpgen`) POSTs `bench.noop` jobs over HTTP/1.1 keep-alive connections,
open loop at the offered loads and at its maximum rate for saturation (`bench.http_ladder`); a
read_committed consumer of job-completed marks each job done as a downstream consumer sees it,
on the wall clock httpgen stamps its sends with. Each job id comes from its 202's body.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench import httpgen
from bench.http_ladder import HttpSystem, completion_ends, http_climb
from bench.jobrelay_kit import NOOP_TYPE, completed_observer
from bench.jobrelay_stack import SETTINGS_NOTE, stack, with_settings
from bench.ladder import Labels
from bench.loadgen import CompletionLog
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics

__all__ = ["NOOP_BODY", "SCENARIO", "JobrelayHttpScenario", "provisioned"]

NAME = "jobrelay-http"
NOOP_BODY = json.dumps({"type": NOOP_TYPE, "payload": {"n": 1}}).encode()


class JobrelayHttpScenario:
    """POST /v1/jobs → JobCompleted visible to a read_committed consumer."""

    name = NAME

    def missing(self) -> str | None:
        """httpgen, or a C compiler to build it."""
        return httpgen.missing()

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """httpgen, topics, the three services and the observer for all runs; everything stopped on exit."""
        binary = await provisioned(ctx)
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}http.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp), intake=True) as services,
        ):
            assert services.intake is not None  # noqa: S101 - asked for above
            ctx.log(f"{NAME}: intake {services.intake.url}, processor pid {services.processor.pid}; {SETTINGS_NOTE}")
            log = CompletionLog(clock=time.time)  # httpgen's clock
            system = HttpSystem(f"{services.intake.url}/v1/jobs", NOOP_BODY, services.intake.pid, completion_ends(log))
            labels = Labels(NAME, "POST→completed", "subject")
            async with completed_observer(ctx.kafka, topics, log):

                async def run_once(run: int) -> list[Measurement]:
                    ctx.log(f"{NAME} run {run}")
                    return with_settings(await http_climb(binary, system, labels, run, ctx.plan, Path(tmp) / "httpgen"))

                yield run_once


async def provisioned(ctx: BenchContext) -> Path:
    """The httpgen binary, compiled first (a second, once per source) if `make httpgen` has not."""
    if not httpgen.binary().is_file():
        ctx.log("compiling bench/httpgen")
    return await asyncio.to_thread(httpgen.provision)


SCENARIO = JobrelayHttpScenario()
