"""Scenario "client-cpu": client CPU per produced message (aiokafka vs confluent-kafka) and the codec.

The measurements of `bench.produce_cpu`, as info rows of the one table: throughput is wall
messages/s, the notes carry process CPU µs per message (all threads, so librdkafka's count).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from bench.produce_cpu import CODEC_OPS, aiokafka_produce, codec_ops, confluent_produce, measure_cpu
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics, event_value

__all__ = ["SCENARIO", "ClientCpuScenario"]

NAME = "client-cpu"


def _row(case: str, run: int, count: int, cpu: float, wall: float) -> Measurement:
    return Measurement(NAME, case, "info", "saturation", run, count / wall, None, completed=count,
                       notes=f"CPU {cpu / count * 1e6:.1f} µs/msg")  # fmt: skip


class ClientCpuScenario:
    """What one message costs the client, in CPU."""

    name = NAME

    def missing(self) -> str | None:
        """Nothing beyond the broker."""
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Topics for the produce runs; deleted on exit."""
        count = 5_000 if ctx.quick else 50_000
        value = event_value()
        with bench_topics(ctx.kafka, f"{ctx.prefix}cpu.", ctx.partitions) as topics:

            async def run_once(run: int) -> list[Measurement]:
                rows = []
                clients: tuple[tuple[str, Callable[..., None]], ...] = (
                    ("aiokafka produce", aiokafka_produce),
                    ("confluent-kafka produce", confluent_produce),
                )
                for case, produce in clients:
                    ctx.log(f"client-cpu run {run}: {case}, {count:,} messages")
                    work = functools.partial(produce, ctx.kafka, topics.requested, value, count)
                    cpu, wall = await asyncio.to_thread(measure_cpu, work)
                    rows.append(_row(case, run, count, cpu, wall))
                for case, op in codec_ops(value).items():
                    cpu, wall = measure_cpu(op)
                    rows.append(_row(case, run, CODEC_OPS, cpu, wall))
                return rows

            yield run_once


SCENARIO = ClientCpuScenario()
