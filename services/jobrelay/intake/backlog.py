"""Admission control: how far behind the processors are on job-requested, learned through Kafka alone.

Every `interval` the monitor asks the brokers for the processors' consumer group's committed
offsets on job-requested and for the topic's end offsets (never the processor itself): the
backlog is their difference, the drain rate how fast the committed offsets moved recently. Past
`max_backlog` the intake answers 503 with a Retry-After of backlog ÷ drain rate (bounded); the
202's Retry-After comes from the same estimate. Until the first measurement, or while Kafka does
not answer, nothing is refused on its account (the producer's own 503 covers a broker that is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from jobrelay.config.settings import KafkaSettings
from jobrelay.messaging.clients import make_admin, make_consumer, topic_partitions
from jobrelay.observability.logging import get_logger

__all__ = ["Backlog", "BacklogMonitor", "next_drain_rate"]

log = get_logger(__name__)
_MAX_WAIT_S = 300  # Retry-After never asks for more than this
_STILL_WAIT_S = 30  # what it asks while nothing drains (no processor is committing)
_SMOOTHING = 0.3  # weight of the newest drain-rate sample


@dataclass(frozen=True, slots=True)
class Backlog:
    """Records on job-requested the processors have not committed, and how fast they commit."""

    records: int
    drain_per_s: float
    at: float  # monotonic time of the measurement

    def poll_hint_s(self, hint_records: int) -> int | None:
        """The 202's Retry-After when the backlog is a queue (at least `hint_records`); None otherwise."""
        return self.wait_s() if self.records >= hint_records else None

    def wait_s(self) -> int:
        """Seconds until the backlog is likely drained (at least 1; the cap when nothing drains)."""
        if self.records <= 0:
            return 1
        if self.drain_per_s <= 0:
            return _STILL_WAIT_S
        return max(1, min(_MAX_WAIT_S, math.ceil(self.records / self.drain_per_s)))


class BacklogMonitor:
    """Measures the backlog of `group` on `topic` every `interval` seconds, in the background."""

    def __init__(self, kafka: KafkaSettings, topic: str, group: str, *, interval: float = 1.0) -> None:
        self.kafka, self.topic, self.group, self.interval = kafka, topic, group, interval
        self.latest: Backlog | None = None
        self._committed: tuple[int, float, int] | None = None  # (sum of committed offsets, when, backlog then)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[BacklogMonitor]:
        """Measure until the block exits."""
        task = asyncio.create_task(self._watch(), name="intake-backlog")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:  # a broker that is away (at start-up too): keep the last figure, connect again
            try:
                await self._measure_until_it_fails()
            except Exception as exc:  # noqa: BLE001 - whatever the clients raise, the intake keeps serving
                log.warning("backlog not measured", error=repr(exc))
            await asyncio.sleep(self.interval)  # the measuring period, not a wait for a condition

    async def _measure_until_it_fails(self) -> None:
        admin = make_admin(self.kafka, "intake-backlog")
        consumer = make_consumer(self.kafka, "intake-backlog")  # end offsets only: never assigned
        try:
            await admin.start()
            await consumer.start()
            partitions = await topic_partitions(consumer, self.topic)
            while True:
                await self.measure(admin, consumer, partitions)
                await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await admin.close()

    async def measure(
        self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> Backlog:
        """One measurement: committed offsets (the log start where the group has none) against the ends."""
        committed = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        now = time.monotonic()
        positions = {tp: max(committed[tp].offset, starts[tp]) if tp in committed else starts[tp] for tp in partitions}
        total = sum(positions.values())
        records = sum(max(0, ends[tp] - positions[tp]) for tp in partitions)
        rate = self.latest.drain_per_s if self.latest is not None else 0.0
        if self._committed is not None:
            rate = next_drain_rate(rate, self._committed, total, now)
        self._committed = (total, now, records)
        self.latest = Backlog(records, rate, now)
        return self.latest


def next_drain_rate(rate: float, previous: tuple[int, float, int], total: int, now: float) -> float:
    """The smoothed drain rate after a measurement of `total` committed offsets at `now`.

    `previous` is the last measurement (committed total, time, backlog). Only an interval that
    began with a backlog is a sample (the first one sets the rate); otherwise the rate stays.
    """
    committed, then, backlog = previous
    if backlog <= 0 or now <= then:
        return rate
    sample = max(0.0, (total - committed) / (now - then))
    return sample if rate <= 0 else _SMOOTHING * sample + (1 - _SMOOTHING) * rate
