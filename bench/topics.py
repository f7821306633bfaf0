"""Topics and record values for Kafka scenarios: unique names, created for the run, deleted after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.topics import admin_client, ensure_topics

__all__ = ["bench_topics", "event_value"]


def event_value() -> bytes:
    """A no-op JobRequested as jobrelay encodes it: the record size every Kafka scenario uses."""
    event = JobRequested(job_id=str(uuid.uuid4()), job_type="bench.noop", payload='{"n": 1}', request_hash="x" * 64)
    return AvroCodec().encode(event)


@contextmanager
def bench_topics(kafka: KafkaSettings, prefix: str, partitions: int) -> Iterator[TopicSettings]:
    """jobrelay's four topics under `prefix` (which must be unique to this bench), deleted on exit."""
    topics = TopicSettings(prefix=prefix, partitions=partitions)
    ensure_topics(kafka, topics)
    try:
        yield topics
    finally:
        admin = admin_client(kafka)  # keep it referenced until the futures resolve
        for future in admin.delete_topics(list(topics.all()), operation_timeout=30).values():
            future.result()
