"""Scenario "projector-rebuild": events/s of a full rebuild of the status view from the topics.

The events (whole job lives: requested, started, 50 %, succeeded) are published once; each run
replays all four topics from offset 0 into a fresh SQLite view, in this process, with the
projector's own `rebuild` (as `jobrelay projector rebuild` does). Full run: 1,000,000 events.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.projector_rebuild import publish, rebuild_once
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics

__all__ = ["FULL_EVENTS", "QUICK_EVENTS", "SCENARIO", "ProjectorRebuildScenario"]

NAME = "projector-rebuild"
FULL_EVENTS = 1_000_000
QUICK_EVENTS = 40_000


class ProjectorRebuildScenario:
    """Publish N events once, then rebuild the view from them once per run."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker every scenario needs."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Create the topics and publish the events; delete the topics on exit."""
        events = QUICK_EVENTS if ctx.quick else FULL_EVENTS
        with bench_topics(ctx.kafka, f"{ctx.prefix}rebuild.", ctx.partitions) as topics:
            ctx.log(f"{NAME}: publishing {events:,} events")
            seconds = await publish(ctx.kafka, topics, events)
            ctx.log(f"{NAME}: published in {seconds:.0f} s ({events / seconds:,.0f}/s)")

            async def run_once(run: int) -> list[Measurement]:
                with tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp:
                    report = await rebuild_once(ctx.kafka, topics, Path(tmp))
                ctx.log(f"{NAME} run {run}: {report.records:,} events in {report.seconds:.1f} s")
                return [
                    Measurement(NAME, "full rebuild (events/s)", "subject", "saturation", run, report.rate, None,
                                completed=report.records, lost=events - report.records,
                                notes=f"{events:,} events, SQLite, in-process; thr÷peer compares unlike work")
                ]  # fmt: skip

            yield run_once


SCENARIO = ProjectorRebuildScenario()
