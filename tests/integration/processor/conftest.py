"""Processor fixtures: settings for fast tests, an in-process processor, and reading its outputs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobRequested
from jobrelay.messaging.clients import EventProducer, make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.processor.engine import Engine
from jobrelay.processor.handlers import load_registry
from jobrelay.processor.service import running
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.kafkautil import read_all

FAST = {
    "commit_interval_s": 0.02,
    "heartbeat_interval_s": 0.3,
    "backoff_base_s": 0.2,
    "backoff_max_s": 0.5,
    "session_timeout_ms": 6000,
    "rebalance_grace_s": 5.0,
    "shutdown_grace_s": 10.0,
}


@pytest.fixture
def processor_settings(topics: TopicSettings) -> ProcessorSettings:
    """Settings for one test: its own group and transactional ids, short timings."""
    return ProcessorSettings(
        group_id=f"proc-{topics.prefix}", transactional_id_prefix=f"tx-{uuid.uuid4().hex[:8]}", **FAST
    )  # type: ignore[arg-type]


@asynccontextmanager
async def processor(kafka: KafkaSettings, topics: TopicSettings, settings: ProcessorSettings) -> AsyncIterator[Engine]:
    """A processor running in this process until the block exits (then drained like on SIGTERM)."""
    failures: list[BaseException] = []
    registry = load_registry(settings.handler_modules)
    async with running(kafka, topics, settings, registry, failures.append) as engine:
        yield engine
    assert not failures, failures


def request(job_type: str, payload: Any = None, **fields: Any) -> JobRequested:
    """A JobRequested with a fresh job id."""
    job_id = fields.pop("job_id", str(uuid.uuid4()))
    return JobRequested(
        job_id=job_id, job_type=job_type, payload=json.dumps(payload), request_hash=f"h-{job_id}", **fields
    )


@asynccontextmanager
async def publisher(kafka: KafkaSettings, topics: TopicSettings) -> AsyncIterator[EventProducer]:
    """Publishes requests as the intake does (acks=all, keyed by job id)."""
    producer = make_producer(kafka, "test-intake")
    await producer.start()
    try:
        yield EventProducer(producer, AvroCodec(), topics, "/jobrelay/test")
    finally:
        await producer.stop()


async def events(kafka: KafkaSettings, topic: str, *, expect: int | None = None, deadline: float = 60.0) -> list[Event]:
    """The decoded events of `topic` a read_committed reader sees (waiting for `expect` of them)."""
    codec = AvroCodec()
    records = await read_all(kafka, topic, expect=expect, deadline=deadline)
    return [codec.decode(r.value) for r in records]


def by_job(items: list[Event]) -> dict[str, list[Event]]:
    """Events grouped by job id, in the order read."""
    grouped: dict[str, list[Event]] = {}
    for event in items:
        grouped.setdefault(event.job_id or "", []).append(event)
    return grouped


async def run_until_completed(
    kafka: KafkaSettings,
    topics: TopicSettings,
    settings: ProcessorSettings,
    jobs: list[JobRequested],
    *,
    expect: int | None = None,
    deadline: float = 60.0,
) -> dict[str, list[Event]]:
    """Publish `jobs`, run a processor until `expect` JobCompleted records (default: one per job) are
    committed, and return every committed event of the three output topics, by topic."""
    async with publisher(kafka, topics) as pub:
        for job in jobs:
            await pub.publish(job)
    async with processor(kafka, topics, settings):
        completed = await events(
            kafka, topics.completed, expect=len(jobs) if expect is None else expect, deadline=deadline
        )
    return {
        "completed": completed,
        "progress": await events(kafka, topics.progress),
        "dlq": await events(kafka, topics.dlq),
    }
