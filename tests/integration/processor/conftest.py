"""Processor fixtures: settings for fast tests, an in-process processor, and reading its outputs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobRequested
from jobrelay.messaging.clients import EventProducer, make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.processor.engine import Engine
from jobrelay.processor.handlers import load_registry
from jobrelay.processor.service import running
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.kafkautil import read_all

T = TypeVar("T")
FAST: dict[str, Any] = {
    "commit_interval_s": 0.02,
    "heartbeat_interval_s": 0.3,
    "backoff_base_s": 0.2,
    "backoff_max_s": 0.5,
    "session_timeout_ms": 6000,
    "rebalance_grace_s": 5.0,
    "shutdown_grace_s": 10.0,
    "handler_modules": ("jobrelay.processor.demo",),  # not registered by default: tests name them
}


@pytest.fixture
def processor_settings(topics: TopicSettings) -> ProcessorSettings:
    """Settings for one test: its own group and transactional ids, short timings."""
    fields = FAST | {"group_id": f"proc-{topics.prefix}", "transactional_id_prefix": f"tx-{uuid.uuid4().hex[:8]}"}
    return ProcessorSettings.model_validate(fields)


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


class Spawned:
    """A processor subprocess and where it logs."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    async def readiness(self) -> dict[str, Any]:
        """The body of /readyz ({} while the HTTP server is not up yet)."""
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                body: dict[str, Any] = (await client.get(f"http://127.0.0.1:{self.port}/readyz")).json()
                return body
        except httpx.TransportError:
            return {}

    async def wait_ready(self, deadline: float = 60.0) -> dict[str, Any]:
        """Wait until the processor owns partitions; its readiness body."""
        return await wait_for(
            self.readiness,
            lambda body: bool(body.get("partitions")),
            deadline,
            f"processor on port {self.port} never owned partitions; log: {self.log}",
        )

    def stop(self, sig: signal.Signals, timeout: float = 60.0) -> int:
        """Send `sig` to this process (by its PID) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


async def wait_for(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], deadline: float, message: str) -> T:
    """Call `probe` until `done(result)`, or fail with `message` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > end:
            raise AssertionError(f"{message} (last: {result!r})")
        await asyncio.sleep(0.2)  # polling interval of the condition, not a stand-in for it


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def spawn(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings, tmp_path: Path
) -> Iterator[Callable[..., Spawned]]:
    """Start processor subprocesses (`python -m jobrelay.processor`); kills leftovers by PID at the end."""
    started: list[Spawned] = []

    def start(**overrides: Any) -> Spawned:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBRELAY_", "KAFKA_"))}
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "JOBRELAY_TOPICS_PREFIX": topics.prefix,
            "JOBRELAY_TOPICS_PARTITIONS": str(topics.partitions),
            "JOBRELAY_LOG_FORMAT": "json",
            "JOBRELAY_DEMO_RECORD_DIR": os.environ["JOBRELAY_DEMO_RECORD_DIR"],
        }
        fields = processor_settings.model_dump(exclude={"worker_id"}) | {"port": port} | overrides
        for name, value in fields.items():
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[f"JOBRELAY_PROCESSOR_{name.upper()}"] = text
        log = tmp_path / f"processor-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "jobrelay.processor"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        started.append(Spawned(process, port, log))
        return started[-1]

    yield start
    for spawned in started:
        if spawned.process.poll() is None:
            spawned.process.kill()
            spawned.process.wait(timeout=30)


def job_for_partition(partition: int, partitions: int, job_type: str, payload: Any, **fields: Any) -> JobRequested:
    """A request whose job id the default partitioner puts on `partition`."""
    partitioner = DefaultPartitioner()
    everything = list(range(partitions))
    for _ in range(10_000):
        job = request(job_type, payload, **fields)
        if partitioner(job.job_id.encode(), everything, everything) == partition:
            return job
    raise AssertionError(f"no job id for partition {partition}")


def attempts_in(path: Path) -> dict[str, list[int]]:
    """What demo.sleep recorded: job id -> the attempts that ran, in order."""
    runs: dict[str, list[int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            job_id, attempt = line.split()
            runs.setdefault(job_id, []).append(int(attempt))
    return runs
