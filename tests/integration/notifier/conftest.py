"""Notifier fixtures: a verifying receiver, settings that shorten every delay, the running notifier."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobDeadLettered, TerminalStatus
from jobrelay.messaging.clients import EventProducer, make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.notifier.main import Notifier, running
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import DeliveryState
from jobrelay.notifier.store.sqlite import SqliteDeliveryStore
from tests.integration.kafkautil import read_all
from tests.integration.notifier.receiver import Receiver, serving

StartNotifier = Callable[[NotifierSettings], Awaitable[Notifier]]
SECRET_A = "whsec_" + base64.b64encode(b"A" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"B" * 32).decode()  # the one being rotated in


def completed(callback_url: str | None, job_type: str = "report.generate", **fields: Any) -> JobCompleted:
    """A JobCompleted as the processor would publish it."""
    fields.setdefault("status", TerminalStatus.SUCCEEDED)
    fields.setdefault("result", '{"rows": 3}')
    return JobCompleted(job_id=str(uuid.uuid4()), job_type=job_type, sequence=3, callback_url=callback_url, **fields)


async def publish(kafka: KafkaSettings, topics: TopicSettings, *events: JobCompleted) -> None:
    """Publish `events` to job-completed, each acknowledged by Kafka."""
    producer = make_producer(kafka, "test-notifier")
    await producer.start()
    try:
        publisher = EventProducer(producer, AvroCodec(), topics, "/jobrelay/test")
        for event in events:
            await publisher.publish(event)
    finally:
        await producer.stop()


async def send_raw(kafka: KafkaSettings, topic: str, value: bytes) -> None:
    """Write raw bytes to `topic`, as a misbehaving producer would."""
    producer = make_producer(kafka, "test-raw")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"raw")
    finally:
        await producer.stop()


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, deadline: float = 60.0) -> None:
    """Poll `check` until it holds; fail with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


async def states(notifier: Notifier) -> dict[str, tuple[DeliveryState, int, int | None]]:
    """url → (state, attempts, last status) of every delivery."""
    store = notifier.store
    assert isinstance(store, SqliteDeliveryStore), "these tests read the SQLite file directly"
    async with store.db.execute("SELECT url, state, attempts, last_status FROM deliveries") as cursor:
        return {url: (DeliveryState(state), attempts, status) async for url, state, attempts, status in cursor}


async def dead_letters(kafka: KafkaSettings, topics: TopicSettings, expect: int) -> list[JobDeadLettered]:
    """The JobDeadLettered records on job-dlq (waiting for `expect` of them)."""
    records: list[ConsumerRecord[bytes, bytes]] = await read_all(kafka, topics.dlq, expect=expect)
    letters = [AvroCodec().decode(r.value) for r in records]
    assert all(isinstance(letter, JobDeadLettered) for letter in letters)
    return letters  # type: ignore[return-value]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1 knowing both signing secrets."""
    async with serving(Receiver([SECRET_A, SECRET_B])) as r:
        yield r


@pytest.fixture
def notifier_settings(tmp_path: Path) -> NotifierSettings:
    """Test settings: short delays, http and 127.0.0.1 allowed (only here), two secrets (rotation)."""
    return NotifierSettings(
        database=tmp_path / "notifier.sqlite3",
        group_id=f"notifier-{uuid.uuid4().hex[:8]}",
        signing_secrets=(SECRET_A, SECRET_B),  # type: ignore[arg-type]
        retry_schedule=(0.1, 0.1),
        jitter=0.0,
        request_timeout=2.0,
        allow_http=True,
        allowed_networks=("127.0.0.1/32",),
        status_base_url="https://jobs.example.test",
    )


@pytest.fixture
async def start_notifier(kafka_settings: KafkaSettings, topics: TopicSettings) -> AsyncIterator[StartNotifier]:
    """Start a notifier in this process; a crashed task fails the test instead of signalling pytest."""
    async with AsyncExitStack() as stack:
        failures: list[BaseException] = []

        def failed(task: asyncio.Task[object]) -> None:
            if not task.cancelled() and (exc := task.exception()) is not None:
                failures.append(exc)

        async def start(settings: NotifierSettings) -> Notifier:
            return await stack.enter_async_context(running(settings, kafka_settings, topics, on_failure=failed))

        yield start
    assert not failures, failures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotifierProcess:
    """The notifier as its own process, configured through the environment like in production."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, int(env["JOBRELAY_NOTIFIER_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobrelay.notifier"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=2) as client:
                return await client.get(path)
        except httpx.TransportError:
            return None


@pytest.fixture
def process_env(kafka_bootstrap: str, topics: TopicSettings, tmp_path: Path) -> dict[str, str]:
    bootstrap = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOBRELAY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    return (
        os.environ
        | bootstrap
        | {
            "JOBRELAY_TOPICS_PREFIX": topics.prefix,
            "JOBRELAY_TOPICS_PARTITIONS": str(topics.partitions),
            "JOBRELAY_NOTIFIER_PORT": str(_free_port()),
            "JOBRELAY_NOTIFIER_DATABASE": str(tmp_path / "notifier.sqlite3"),
            "JOBRELAY_NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:8]}",
            "JOBRELAY_NOTIFIER_SIGNING_SECRETS": f"{SECRET_A},{SECRET_B}",
            "JOBRELAY_NOTIFIER_RETRY_SCHEDULE": ",".join(["0.2"] * 50),
            "JOBRELAY_NOTIFIER_JITTER": "0",
            "JOBRELAY_NOTIFIER_ALLOW_HTTP": "true",
            "JOBRELAY_NOTIFIER_ALLOWED_NETWORKS": "127.0.0.1/32",
            "JOBRELAY_LOG_FORMAT": "json",
        }
    )


@pytest.fixture
def notifier_process(process_env: dict[str, str], tmp_path: Path) -> Iterator[NotifierProcess]:
    process = NotifierProcess(process_env, tmp_path / "notifier.log")
    try:
        yield process
    finally:
        process.stop()
        sys.stderr.write(process.log.read_text(errors="replace")[-4000:] if process.log.exists() else "")
