"""Projector fixtures: the real service on an ephemeral port, a publisher, a job's events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.messaging.clients import EventProducer, make_codec, make_producer
from jobrelay.projector.main import create_app
from jobrelay.projector.settings import ProjectorSettings

Start = Callable[..., Awaitable[httpx.AsyncClient]]


async def _serve(stack: AsyncExitStack, app: Any) -> str:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())

    async def stop() -> None:
        server.should_exit = True
        await task

    stack.push_async_callback(stop)
    deadline = time.monotonic() + 60
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            await task  # surfaces the startup error
            raise RuntimeError("the projector did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def start_projector(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts the projector (real lifespan, real uvicorn, SQLite in tmp_path); returns an HTTP client for it."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> httpx.AsyncClient:
            defaults: dict[str, Any] = {
                "db_path": tmp_path / "view.sqlite",
                "lag_interval_s": 0.2,
                "catch_up_timeout_s": 20,
                "sse_ping_s": 1,
                "batch_size": 200,
            }
            settings = ProjectorSettings(**(defaults | overrides))
            base = await _serve(stack, create_app(settings, kafka_settings, topics))
            return await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))

        yield start


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings, topics: TopicSettings) -> AsyncIterator[EventProducer]:
    """Publishes events to the test's topics, as the intake and the processor would."""
    producer = make_producer(kafka_settings, "test-publisher")
    await producer.start()
    try:
        yield EventProducer(producer, make_codec(kafka_settings), topics, "/jobrelay/test")
    finally:
        await producer.stop()


def life(
    job_id: str | None = None,
    *,
    job_type: str = "demo.echo",
    outcome: TerminalStatus = TerminalStatus.SUCCEEDED,
    result: str = '{"answer": 42}',
) -> list[Event]:
    """A job's whole life: requested, started, 50 %, completed."""
    job = job_id or str(uuid.uuid4())
    requested = JobRequested(job_id=job, job_type=job_type, payload='{"n": 1}', request_hash="h")
    started = JobProgress(job_id=job, job_type=job_type, sequence=sequence(1, 1), kind=ProgressKind.STARTED)
    halfway = JobProgress(
        job_id=job,
        job_type=job_type,
        sequence=sequence(1, 2),
        kind=ProgressKind.PROGRESS,
        percent=50.0,
        message="half way",
    )
    end = JobCompleted(
        job_id=job,
        job_type=job_type,
        sequence=terminal_sequence(1),
        status=outcome,
        result=result if outcome is TerminalStatus.SUCCEEDED else None,
    )
    return [requested, started, halfway, end]


def job_of(events: list[Event]) -> str:
    """The job id of a life's events."""
    job_id = events[0].job_id
    if job_id is None:
        raise ValueError("no job id")
    return job_id


async def wait_until(
    client: httpx.AsyncClient, job_id: str, check: Callable[[dict[str, Any]], bool], deadline: float = 30
) -> dict[str, Any]:
    """Long-poll the job until `check` accepts its document (each poll returns as soon as the job changes)."""
    end = time.monotonic() + deadline
    body: dict[str, Any] = {}
    headers: dict[str, str] = {}  # the first look answers at once; then long-poll from what we saw
    while time.monotonic() < end:
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        if response.status_code == 200:
            body = response.json()
            if check(body):
                return body
            headers = {"If-None-Match": response.headers["ETag"], "Prefer": "wait=5"}
        elif response.status_code != 304:
            raise AssertionError(f"{response.status_code}: {response.text}")
    raise AssertionError(f"job {job_id} never got there; last seen {body}")


async def wait_for_status(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    """Long-poll the job until it shows `status`."""
    return await wait_until(client, job_id, lambda body: body["status"] == status)
