"""Scenario "processor-memory": is the processor's RSS flat between the 100,000th and the 500,000th job?

Each run gets fresh topics, publishes 500,000 no-op jobs with confluent-kafka (`bench.processor_memory`,
from a thread, while the services start), runs one processor and the projector as in
"jobrelay-publisher" (`bench.jobrelay_stack`), and samples the processor's resident set size when a
read_committed reader of job-completed has counted the 100,000th, 200,000th, ... 500,000th outcome.
The row's throughput is the jobs/s between the first and the last mark; the notes carry the RSS at
each end and their ratio (flat: within 10 %). `--quick`: 10,000 jobs, marks at 2,000 and 10,000.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.jobrelay_stack import SETTINGS_NOTE, stack
from bench.processor_memory import RssWatch, publish_noops, rss_bytes, watch_rss
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics

__all__ = ["FULL_MARKS", "QUICK_MARKS", "SCENARIO", "ProcessorMemoryScenario", "memory_row"]

NAME = "processor-memory"
FULL_MARKS = (100_000, 200_000, 300_000, 400_000, 500_000)
QUICK_MARKS = (2_000, 10_000)
FLAT = 1.10  # RSS at the last mark ÷ RSS at the first, at most
RUN_DEADLINE_S = 400.0  # per run: two, with start-up, stay within the runner's 900 s budget per scenario
_MIB = 1024 * 1024


def memory_row(run: int, watch: RssWatch, marks: tuple[int, ...], published: int) -> Measurement:
    """The table row of one run: jobs/s between the first and last mark, the RSS ratio in the notes."""
    by_jobs = {s.jobs: s.rss for s in watch.samples}
    first, last = marks[0], marks[-1]
    if first in by_jobs and last in by_jobs:
        ratio = by_jobs[last] / by_jobs[first]
        verdict = "flat" if ratio <= FLAT else f"NOT flat (> {FLAT:.2f})"
        notes = (f"RSS {by_jobs[first] / _MIB:.1f} MiB at job {first:,} → {by_jobs[last] / _MIB:.1f} MiB at "
                 f"{last:,}: {ratio:.3f}x, {verdict}")  # fmt: skip
    else:
        reached = ", ".join(f"{s.jobs:,}: {s.rss / _MIB:.1f} MiB" for s in watch.samples) or "no mark"
        notes = f"only {watch.completed:,} of {last:,} jobs completed in time (RSS {reached})"
    notes += f"; {published:,} jobs published with confluent-kafka as the processor + projector ran; {SETTINGS_NOTE}"
    return Measurement(NAME, "RSS job 100k→500k" if marks == FULL_MARKS else "RSS (quick marks)", "info",
                       "saturation", run, watch.rate_between(first, last), None, completed=watch.completed,
                       lost=max(0, last - watch.completed), notes=notes)  # fmt: skip


class ProcessorMemoryScenario:
    """One long no-op run per bench run, the processor's RSS sampled along the way."""

    name = NAME

    def missing(self) -> str | None:
        """psutil, from the bench extra."""
        import importlib.util

        if importlib.util.find_spec("psutil") is None:
            return "psutil is not installed: .venv/bin/pip install -e '.[dev,bench]'"
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Nothing shared between runs: each one has its own topics and services."""
        marks = QUICK_MARKS if ctx.quick else FULL_MARKS

        async def run_once(run: int) -> list[Measurement]:
            with (
                tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp,
                bench_topics(ctx.kafka, f"{ctx.prefix}mem{run}.", ctx.partitions) as topics,
            ):
                ctx.log(f"{NAME} run {run}: publishing {marks[-1]:,} no-op jobs while the services start")
                publishing = asyncio.create_task(asyncio.to_thread(publish_noops, ctx.kafka, topics, marks[-1]))
                with stack(ctx.kafka, topics, Path(tmp), group=f"mem{run}") as services:
                    pid = services.processor.pid
                    watch = await asyncio.to_thread(
                        watch_rss, ctx.kafka, topics.completed, marks, lambda: rss_bytes(pid), RUN_DEADLINE_S
                    )
                seconds = await publishing
                ctx.log(f"{NAME} run {run}: published in {seconds:.0f} s; {watch.completed:,} completed")
                return [memory_row(run, watch, marks, marks[-1])]

        yield run_once


SCENARIO = ProcessorMemoryScenario()
