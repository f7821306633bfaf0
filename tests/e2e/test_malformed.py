"""A corpus of malformed records on every topic, against the whole running stack.

Every poison record reaches job-dlq with its original bytes (once per service that reads its
topic), and every service keeps going: a healthy record sent after the poison *to the same
partition* (same key) is handled by each reader, and the projector's lag returns to 0.
What each kind of bad input gets:

- random bytes, truncated Avro, an unknown fingerprint, a foreign Avro schema, an empty value and
  a null value (tombstone), on any of the four topics: a dead letter (UNDECODABLE) from each
  service that reads the topic — on job-dlq itself the projector's, which is a valid record, so
  nothing loops;
- a valid record with a 200 KB junk header: handled like any other record, not dead-lettered.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import fastavro
import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.dev.stack import Stack
from jobrelay.jobs.events import JobDeadLettered, JobRequested
from jobrelay.messaging.clients import make_producer
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.partitioning import partition_for
from tests.integration.kafkautil import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FOREIGN = fastavro.parse_schema({"type": "record", "name": "Foreign", "fields": [{"name": "x", "type": "long"}]})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Poison:
    """One malformed record: what it is, its value (None: a tombstone) and the key it is sent with."""

    kind: str
    value: bytes | None


def corpus(valid: bytes, seed: int = 7) -> list[Poison]:
    """The malformed values, built from one valid encoded record."""
    rng = random.Random(seed)
    foreign = b"\xc3\x01" + struct.pack("<Q", rng.getrandbits(64)) + _foreign_body()
    return [
        Poison("random bytes", rng.randbytes(64)),
        Poison("truncated Avro", valid[: len(valid) // 2]),
        Poison("unknown fingerprint", valid[:2] + rng.randbytes(8) + valid[10:]),
        Poison("a foreign Avro schema", foreign),
        Poison("empty", b""),
        Poison("null value", None),
    ]


def _foreign_body() -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, FOREIGN, {"x": 42})
    return out.getvalue()


@dataclass
class Running:
    stack: Stack
    kafka: KafkaSettings
    topics: TopicSettings
    api_key: str

    def url(self, name: str) -> str:
        return next(s.url for s in self.stack.services if s.name == name)


@pytest.fixture(scope="module")
def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run = uuid.uuid4().hex[:8]
    ports = {name: _free_port() for name in ("intake", "projector", "notifier", "processor")}
    prefix = f"bad{run}."
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBRELAY_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOBRELAY_TOPICS_PREFIX": prefix,
        "JOBRELAY_TOPICS_PARTITIONS": "2",
        "JOBRELAY_INTAKE_STATUS_BASE_URL": f"http://127.0.0.1:{ports['projector']}",
        "JOBRELAY_NOTIFIER_GROUP_ID": f"bad{run}-notifier",
        "JOBRELAY_PROCESSOR_GROUP_ID": f"bad{run}-processor",
        "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"bad{run}",
    }
    stack = Stack(env=env, run_dir=tmp_path_factory.mktemp("badstack"), ports=ports)
    stack.up(timeout=120)
    try:
        kafka, topics = KafkaSettings(bootstrap_servers=kafka_bootstrap), TopicSettings(prefix=prefix, partitions=2)
        yield Running(stack, kafka, topics, stack.api_key())
    finally:
        stack.stop()


async def test_every_malformed_record_is_dead_lettered_by_each_reader_and_nobody_stops(running: Running) -> None:
    codec, topics = AvroCodec(), running.topics
    key = str(uuid.uuid4())  # every poison and the healthy records after it share one partition
    sample = codec.encode(JobRequested(job_id=key, job_type="demo.echo", payload="{}", request_hash="h"))
    poisons = corpus(sample)
    producer = make_producer(running.kafka, "poisoner")
    await producer.start()
    try:
        for topic in (topics.requested, topics.progress, topics.completed, topics.dlq):
            for poison in poisons:
                await (await producer.send(topic, poison.value, key=key.encode()))
        # Valid jobs after the poison on the same partitions: one with a 200 KB junk header, and on
        # every topic a healthy life whose records the readers must get to.
        junk = JobRequested(job_id=_beside(key, 2), job_type="demo.echo", payload='{"junk": 1}', request_hash="j",
                            tenant="dev")  # fmt: skip
        await (await producer.send(topics.requested, codec.encode(junk), key=junk.job_id.encode(),
                                   headers=[("x-junk", b"\xff" * 200_000)]))  # fmt: skip
        healthy = JobRequested(job_id=_beside(key, 2), job_type="demo.echo", payload="{}", request_hash="k",
                               tenant="dev")  # fmt: skip
        await (await producer.send(topics.requested, codec.encode(healthy), key=healthy.job_id.encode()))
    finally:
        await producer.stop()

    headers = {"Authorization": f"Bearer {running.api_key}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        # Processed, completed and folded: the processor and the projector got past the poison.
        for job in (healthy.job_id, junk.job_id):
            await _until_status(http, f"{running.url('projector')}/v1/jobs/{job}", "succeeded")
        await _until_lag_zero(http, running.url("projector"))

    readers = {topics.requested: ("processor", "projector"), topics.progress: ("projector",),
               topics.completed: ("projector", "notifier"), topics.dlq: ("projector",)}  # fmt: skip
    expected = sum(len(stages) for stages in readers.values()) * len(poisons)
    records = await read_all(running.kafka, topics.dlq, expect=expected + len(poisons))
    dead = [letter for r in records if r.value and isinstance(letter := _decoded(codec, r.value), JobDeadLettered)]
    got = Counter((d.source_topic, d.stage, d.original_value or b"") for d in dead)
    want = Counter((t, stage, p.value or b"") for t, stages in readers.items() for stage in stages for p in poisons)
    assert got == want, "each poison once per reader, with its original bytes"
    assert all(d.original_key == key.encode() for d in dead)
    assert junk.job_id not in {d.job_id for d in dead}, "a valid record with a junk header is handled"


def _beside(key: str, partitions: int) -> str:
    """A fresh job id on the same partition as `key`."""
    while partition_for(job := str(uuid.uuid4()), partitions) != partition_for(key, partitions):
        pass
    return job


def _decoded(codec: AvroCodec, value: bytes) -> object:
    try:
        return codec.decode(value)
    except SerializationError:
        return None  # the poison written onto job-dlq itself


async def _until_status(http: httpx.AsyncClient, url: str, status: str, deadline: float = 60) -> None:
    stop = time.monotonic() + deadline
    seen = None
    while time.monotonic() < stop:
        response = await http.get(url, headers={"Prefer": "wait=5"})
        if response.status_code == 200 and (seen := response.json()["status"]) == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never {status}; last {seen}")


async def _until_lag_zero(http: httpx.AsyncClient, base: str, deadline: float = 60) -> None:
    stop = time.monotonic() + deadline
    lag = None
    while time.monotonic() < stop:
        lag = (await http.get(f"{base}/readyz")).json().get("lag")
        if lag == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the projector's lag stayed {lag}")
