"""Building blocks for the jobrelay scenarios (issue 8, items 2-4).

- `service(...)`: run one jobrelay service as a process (the same argv as `jobrelay dev up`) on
  a free port, with the bench's topic prefix, wait for `/healthz`, stop it by PID.
- `completed_observer(...)`: a read_committed consumer of job-completed that marks each job id
  complete in a `CompletionLog` (submit→completion as a downstream consumer sees it).
- `publish_submit(...)` and `http_submit(...)`: `Submit` callables for the load generator that
  publish a JobRequested with the SDK's `JobPublisher` (acks=all), or POST /v1/jobs and expect
  a 202.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.loadgen import CompletionLog, Submit
from bench.procs import free_port, started, wait_until
from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.dev.localkafka import project_root
from jobrelay.dev.stack import SERVICES
from jobrelay.messaging.confluent import consumer_config
from jobrelay.sdk.publisher import JobPublisher

__all__ = [
    "HTTP_CONNECTIONS",
    "NOOP_TYPE",
    "Running",
    "completed_observer",
    "http_client",
    "http_submit",
    "publish_submit",
    "service",
]

NOOP_TYPE = "bench.noop"  # the job type the processor must map to a no-op handler

# Connections of the Python (httpx) client `bench.profile` drives the intake with; the bench's
# HTTP scenarios use the compiled httpgen instead (`bench.http_ladder`). Measured on 2 cores: 8 connections gave
# 880 req/s at 0.8 ms of client CPU per request; 32 only 335, the client at a full core.
HTTP_CONNECTIONS = 8


@dataclass(frozen=True, slots=True)
class Running:
    """A service the bench started: where it answers and its process id (for profilers)."""

    url: str
    pid: int


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310 - 127.0.0.1 only
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def service(
    name: str, kafka: KafkaSettings, topics: TopicSettings, workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[Running]:
    """Start service `name` on a free port with these topics; yield its URL and PID; stop it by PID."""
    spec = next(s for s in SERVICES if s.name == name)
    port = free_port()
    full_env = (
        os.environ
        | {
            spec.port_env: str(port),
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "JOBRELAY_TOPICS_PREFIX": topics.prefix,
            "JOBRELAY_TOPICS_PARTITIONS": str(topics.partitions),
            "PYTHONPATH": os.pathsep.join(p for p in (str(project_root()), os.environ.get("PYTHONPATH", "")) if p),
        }
        | dict(env or {})
    )
    cmd = [sys.executable, "-m", "jobrelay.cli.main", name]
    url = f"http://127.0.0.1:{port}"
    # cwd = workdir: whatever a service writes relative to it (a SQLite view) stays out of the checkout
    with started(cmd, workdir / f"{name}.log", env=full_env, cwd=workdir) as proc:
        wait_until(lambda: proc.poll() is not None or _healthy(url), 60, f"the {name}")
        if proc.poll() is not None:
            tail = (workdir / f"{name}.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the {name} exited with {proc.returncode}:\n{tail}")
        yield Running(url, proc.pid)


def _observe(consumer: Consumer, log: CompletionLog, stop: threading.Event) -> None:
    # job-completed is keyed by job id and carries only JobCompleted: the key is the job that completed.
    while not stop.is_set():
        first = consumer.poll(0.05)
        if first is None:
            continue
        for message in [first, *consumer.consume(4_999, 0)]:
            key = message.key()
            if message.error() is None and key:
                log.complete(key.decode())


@asynccontextmanager
async def completed_observer(kafka: KafkaSettings, topics: TopicSettings, log: CompletionLog) -> AsyncIterator[None]:
    """Mark jobs complete as their JobCompleted becomes visible to a read_committed consumer.

    A librdkafka consumer on a thread of its own, reading keys only: the observer is the bench's,
    and it shares the two cores with what it measures (aiokafka plus decoding cost ~30 µs a record).
    """
    consumer = Consumer(consumer_config(kafka, "bench-observer", **{"group.id": "bench-observer"}))
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        metadata = await asyncio.to_thread(consumer.list_topics, topics.completed, 30)
        partitions = sorted(metadata.topics[topics.completed].partitions)
        ends = [TopicPartition(topics.completed, p, OFFSET_END) for p in partitions]
        consumer.assign(ends)
        thread = threading.Thread(target=_observe, args=(consumer, log, stop), name="bench-observer", daemon=True)
        thread.start()
        yield
    finally:
        stop.set()
        if thread is not None:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(consumer.close)


def publish_submit(publisher: JobPublisher) -> Submit:
    """Submit = `JobPublisher.publish` a no-op job (validated, acks=all), as an SDK user would."""

    async def submit(index: int) -> str:
        published = await publisher.publish(NOOP_TYPE, {"n": index})
        return published.id

    return submit


def http_client(connections: int = HTTP_CONNECTIONS) -> httpx.AsyncClient:
    """A keep-alive client with at most `connections` connections."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


def http_submit(client: httpx.AsyncClient, base_url: str) -> Submit:
    """Submit = POST /v1/jobs with a no-op job; the key is the id in the 202's body."""

    async def submit(index: int) -> str:
        response = await client.post(f"{base_url}/v1/jobs", json={"type": NOOP_TYPE, "payload": {"n": index}})
        if response.status_code != 202:
            raise RuntimeError(f"intake answered {response.status_code}: {response.text[:200]}")
        job_id: str = response.json()["id"]
        return job_id

    return submit
