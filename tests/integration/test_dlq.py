"""Dead letters can be listed and replayed after a fix (what `jobrelay dlq` does)."""

from __future__ import annotations

import uuid

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import DeadLetterReason, JobDeadLettered, JobRequested, RecordHeader
from jobrelay.messaging.clients import EventProducer, make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.dlq import read_dead_letters, replay
from jobrelay.messaging.headers import header
from tests.integration.kafkautil import read_all

pytestmark = pytest.mark.kafka


async def test_a_failed_request_replays_as_a_new_job_and_garbage_goes_back_unchanged(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    codec = AvroCodec()
    request = JobRequested(job_id=str(uuid.uuid4()), job_type="demo.fail", payload='{"n": 1}', request_hash="h1")
    letters = [
        JobDeadLettered(
            stage="processor",
            reason=DeadLetterReason.RETRIES_EXHAUSTED,
            source_topic=topics.requested,
            source_partition=0,
            source_offset=7,
            job_id=request.job_id,
            job_type=request.job_type,
            attempts=3,
            original_key=request.job_id.encode(),
            original_value=codec.encode(request),
        ),
        JobDeadLettered(
            stage="projector",
            reason=DeadLetterReason.UNDECODABLE,
            source_topic=topics.progress,
            source_partition=1,
            source_offset=9,
            original_key=b"k",
            original_value=b"\x00junk",
            original_headers=(RecordHeader("origin", b"x"),),
        ),
    ]
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        publisher = EventProducer(producer, codec, topics, "/jobrelay/test")
        for letter in letters:
            await publisher.publish(letter, key=letter.original_key)
        found = await read_dead_letters(kafka_settings, topics, codec)
        assert sorted(d.letter.reason for d in found) == sorted(letter.reason for letter in letters)
        done = [await replay(producer, codec, topics, d) for d in found]
    finally:
        await producer.stop()

    new_job = next(r.job_id for r in done if r.job_id is not None)
    assert new_job != request.job_id
    (replayed,) = await read_all(kafka_settings, topics.requested, expect=1)
    event = codec.decode(replayed.value)
    assert isinstance(event, JobRequested)
    assert (event.job_id, event.job_type, event.payload) == (new_job, "demo.fail", '{"n": 1}')
    assert event.client_id == f"replay-of:{request.job_id}" and replayed.key == new_job.encode()
    assert (header(replayed.headers, "jobrelay-replay-of") or "").startswith(f"{topics.dlq}/")

    (raw,) = await read_all(kafka_settings, topics.progress, expect=1)
    assert (raw.key, raw.value, header(raw.headers, "origin")) == (b"k", b"\x00junk", "x")
