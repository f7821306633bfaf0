"""Scenario "jobrelay-publisher": no-op jobs published with the SDK's JobPublisher straight to Kafka.

Two cases with the processor and the projector running as processes: (1) publish → JobCompleted
as a read_committed consumer sees it; (2) publish → the job's row says SUCCEEDED in the
projector's status view (read-only SQLite reader, see `bench.viewpoll` for why not the HTTP API).
Each case runs the whole ladder with the same services.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.jobrelay_kit import completed_observer, publish_submit
from bench.jobrelay_stack import SETTINGS_NOTE, stack, with_settings
from bench.ladder import Labels, climb
from bench.loadgen import CompletionLog, Target
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics
from bench.viewpoll import ViewPoller
from jobrelay.sdk.publisher import JobPublisher

__all__ = ["SCENARIO", "JobrelayPublisherScenario"]

NAME = "jobrelay-publisher"


class JobrelayPublisherScenario:
    """JobPublisher.publish → JobCompleted, and → the row in the status view."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics, processor, projector, one publisher and both observers for all runs."""
        with (
            tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
            bench_topics(ctx.kafka, f"{ctx.prefix}pub.", ctx.partitions) as topics,
            stack(ctx.kafka, topics, Path(tmp)) as services,
        ):
            ctx.log(
                f"{NAME}: processor pid {services.processor.pid}, projector {services.projector.url}; {SETTINGS_NOTE}"
            )
            async with JobPublisher.connect(ctx.kafka, topics) as publisher:
                completed_log, view_log = CompletionLog(), CompletionLog()
                poller = ViewPoller(services.view_db, view_log)
                submit = publish_submit(publisher)
                to_completed = Target(submit, completed_log)
                to_view = Target(poller.watch(submit), view_log)
                async with completed_observer(ctx.kafka, topics, completed_log):
                    with poller.running():

                        async def run_once(run: int) -> list[Measurement]:
                            ctx.log(f"{NAME} run {run}: publish→completed")
                            rows = await climb(
                                to_completed, Labels(NAME, "publish→completed", "subject"), run, ctx.plan
                            )
                            ctx.log(f"{NAME} run {run}: publish→view row SUCCEEDED")
                            rows += await climb(to_view, Labels(NAME, "publish→view row", "subject"), run, ctx.plan)
                            return with_settings(rows)

                        yield run_once


SCENARIO = JobrelayPublisherScenario()
