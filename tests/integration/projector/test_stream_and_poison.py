"""SSE: progress then the terminal event, resumable without repeats; poison goes to job-dlq and is survived."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import EventProducer
from jobrelay.messaging.codec import AvroCodec
from tests.integration.kafkautil import read_all
from tests.integration.projector.conftest import Start, job_of, life, wait_for_status

pytestmark = pytest.mark.kafka


async def _events(lines: AsyncIterator[str], count: int | None = None) -> list[dict[str, Any]]:
    """Parse SSE events off a stream's lines (until `count` events, or the end of the stream)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in lines:
        if line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            current[key] = value.strip()
        elif line == "" and current:
            events.append({"id": int(current["id"]), "event": current["event"], "data": json.loads(current["data"])})
            current = {}
            if count is not None and len(events) >= count:
                break
    return events


async def test_sse_delivers_progress_then_the_end_and_resumes_from_last_event_id(
    start_projector: Start, publisher: EventProducer
) -> None:
    client = await start_projector()
    requested, started, halfway, end = life()
    job = job_of([requested])
    await publisher.publish(requested)
    async with client.stream("GET", f"/v1/jobs/{job}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        (first,) = await _events(lines, 1)
        await publisher.publish(started)
        (second,) = await _events(lines, 1)
    assert [first["data"]["status"], second["data"]["status"]] == ["accepted", "running"]
    await publisher.publish(halfway)
    await publisher.publish(end)
    await wait_for_status(client, job, "succeeded")
    headers = {"Last-Event-ID": str(second["id"])}
    async with client.stream("GET", f"/v1/jobs/{job}/events", headers=headers) as response:
        rest = await _events(response.aiter_lines())  # the stream ends by itself after the terminal event
    assert rest, "the resumed stream sent nothing"
    assert all(e["id"] > second["id"] for e in rest), "an event was repeated"
    assert rest[-1]["data"]["status"] == "succeeded" and rest[-1]["data"]["progress"] == 100.0
    after_end = await client.get(f"/v1/jobs/{job}/events", headers={"Last-Event-ID": str(rest[-1]["id"])})
    assert after_end.status_code == 204  # EventSource stops reconnecting


async def test_sse_streams_live_progress_and_ends_after_the_terminal_event(
    start_projector: Start, publisher: EventProducer
) -> None:
    client = await start_projector()
    events = life()
    job = job_of(events)
    await publisher.publish(events[0])
    statuses: list[tuple[str, float | None]] = []
    async with client.stream("GET", f"/v1/jobs/{job}/events") as response:
        lines = response.aiter_lines()
        for event in [*events[1:], None]:
            (received,) = await _events(lines, 1)
            statuses.append((received["data"]["status"], received["data"]["progress"]))
            if event is not None:
                await publisher.publish(event)
        assert await _events(lines) == []  # and then the stream is over
    assert statuses == [("accepted", None), ("running", None), ("running", 50.0), ("succeeded", 100.0)]


async def test_malformed_records_go_to_job_dlq_and_the_projector_carries_on(
    start_projector: Start, publisher: EventProducer, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    client = await start_projector()
    poisoned = str(uuid.uuid4())
    producer = publisher.producer
    await (await producer.send(topics.requested, b"\x00not avro", key=poisoned.encode()))
    await (await producer.send(topics.progress, b"\xc3\x01garbage", key=b"not-a-job-id"))
    healthy = life()
    for event in healthy:
        await publisher.publish(event)
    await wait_for_status(client, job_of(healthy), "succeeded")  # the poison did not stop it
    failed = await wait_for_status(client, poisoned, "failed")  # its own dead letter failed the request
    assert failed["error"]["code"] == "UNDECODABLE"
    letters = await read_all(kafka_settings, topics.dlq, expect=2)
    decoded = [AvroCodec().decode(r.value) for r in letters]
    sources = {(d.source_topic, d.stage, d.original_value) for d in decoded}  # type: ignore[union-attr]
    assert sources == {
        (topics.requested, "projector", b"\x00not avro"),
        (topics.progress, "projector", b"\xc3\x01garbage"),
    }
