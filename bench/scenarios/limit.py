"""Scenario "limit": raw Kafka on this machine, the ceiling every other row is divided by.

(a) the broker's own tools: ProducerPerformance (acks=all, idempotent, full speed, the same
record size as our events; its latency is produce→ack under saturation) and EndToEndLatency
(acks=all, one record at a time, produce→consume); (b) the raw Python produce→consume loop
with aiokafka and with confluent-kafka, measured by the same load generator as Celery and
jobrelay: saturation, then the open-loop offered loads.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bench.kafkatools import end_to_end_latency, producer_perf
from bench.ladder import Labels, climb
from bench.rawkafka import aiokafka_loop, confluent_loop
from bench.scenario import BenchContext, Measurement, RunOnce
from bench.topics import bench_topics, event_value
from jobrelay.dev.localkafka import LocalKafka

__all__ = ["SCENARIO", "LimitScenario"]

NAME = "limit"


class LimitScenario:
    """Raw Kafka: the broker's tools and the bare Python clients."""

    name = NAME

    def missing(self) -> str | None:
        """Java runs the Kafka tools (Maven fetches them on first use)."""
        if shutil.which("java") is None:
            return "java is not on PATH: apt-get install -y openjdk-17-jre-headless"
        return None

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Create the topics (one partition for EndToEndLatency), yield one run, delete them."""
        kafka = LocalKafka()
        bootstrap = ctx.kafka.bootstrap_servers
        value = event_value()
        plan = ctx.plan
        with (
            bench_topics(ctx.kafka, f"{ctx.prefix}limit.", ctx.partitions) as topics,
            bench_topics(ctx.kafka, f"{ctx.prefix}limit1.", 1) as single,
        ):

            async def run_once(run: int) -> list[Measurement]:
                ctx.log(f"limit run {run}: ProducerPerformance, {plan.tool_records:,} records of {len(value)} B")
                perf = await asyncio.to_thread(
                    producer_perf, kafka, bootstrap, topics.requested, plan.tool_records, len(value)
                )
                ctx.log(f"limit run {run}: EndToEndLatency, {plan.latency_records:,} round trips")
                e2e = await asyncio.to_thread(
                    end_to_end_latency, kafka, bootstrap, single.requested, plan.latency_records, len(value)
                )
                rows = [
                    Measurement(NAME, "kafka ProducerPerformance", "limit", "saturation", run,
                                perf.records_per_s, perf.latency, completed=perf.records,
                                notes=f"{len(value)} B, acks=all, latency=produce→ack", reference=True),
                    Measurement(NAME, "kafka EndToEndLatency", "limit", "latency", run, None, e2e.latency,
                                completed=e2e.records, notes="acks=all, produce→consume"),
                ]  # fmt: skip
                loops = (
                    ("aiokafka", aiokafka_loop, topics.progress),
                    ("confluent-kafka", confluent_loop, topics.completed),
                )
                for client, loop, topic in loops:
                    ctx.log(f"limit run {run}: python {client} produce→consume")
                    async with loop(ctx.kafka, topic, value) as target:
                        labels = Labels(NAME, f"{client} loop", "limit", reference=client == "aiokafka")
                        rows += await climb(target, labels, run, plan)
                return rows

            yield run_once


SCENARIO = LimitScenario()
