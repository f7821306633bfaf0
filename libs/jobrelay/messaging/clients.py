"""Kafka client factories with jobrelay's defaults, and the producer that publishes events.

Producers: acks=all and idempotence, always; consumers: read_committed, no auto-commit.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobCancelRequested, JobCompleted, JobDeadLettered, JobProgress, JobRequested
from jobrelay.messaging.codec import AvroCodec, ConfluentFraming
from jobrelay.messaging.headers import event_headers
from jobrelay.messaging.schemas import load_schemas
from jobrelay.observability.metrics import PRODUCED
from jobrelay.observability.tracing import produce_span

__all__ = [
    "EventProducer",
    "make_admin",
    "make_codec",
    "make_consumer",
    "make_producer",
    "topic_for",
    "topic_partitions",
]


def _common(kafka: KafkaSettings, client_id: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": f"{kafka.client_id}-{client_id}",
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism:
        options |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password,
        }
    return options


def make_producer(
    kafka: KafkaSettings, client_id: str, *, transactional_id: str | None = None, **overrides: Any
) -> AIOKafkaProducer:
    """An idempotent acks=all producer (transactional when `transactional_id` is given)."""
    options = _common(kafka, client_id) | {"acks": "all", "enable_idempotence": True, "linger_ms": 2}
    if transactional_id is not None:
        options["transactional_id"] = transactional_id
    return AIOKafkaProducer(**(options | overrides))


def make_consumer(
    kafka: KafkaSettings, client_id: str, *topics: str, group_id: str | None = None, **overrides: Any
) -> AIOKafkaConsumer:
    """A read_committed consumer that never commits on its own; subscribes to `topics` if given."""
    options = _common(kafka, client_id) | {
        "group_id": group_id,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


def make_admin(kafka: KafkaSettings, client_id: str) -> AIOKafkaAdminClient:
    """An asyncio admin client (committed offsets with their metadata, topic metadata)."""
    return AIOKafkaAdminClient(**_common(kafka, client_id))


def make_codec(kafka: KafkaSettings) -> AvroCodec:
    """The codec in the framing the settings call for (Confluent when a registry URL is set)."""
    schemas = load_schemas()
    if not kafka.schema_registry_url:
        return AvroCodec(schemas)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient.new_client({"url": kafka.schema_registry_url})
    return AvroCodec(schemas, ConfluentFraming(schemas, client))


def topic_for(event: Event, topics: TopicSettings) -> str:
    """The topic each kind of event is written to."""
    match event:
        case JobRequested() | JobCancelRequested():
            return topics.requested
        case JobProgress():
            return topics.progress
        case JobCompleted():
            return topics.completed
        case JobDeadLettered():
            return topics.dlq


class EventProducer:
    """Publishes events: Avro value, job id key, CloudEvents headers, a PRODUCER span each."""

    def __init__(self, producer: AIOKafkaProducer, codec: AvroCodec, topics: TopicSettings, source: str) -> None:
        self.producer, self.codec, self.topics = producer, codec, topics
        self.source = source  # the CloudEvents ce_source, e.g. /jobrelay/intake

    async def publish(self, event: Event, *, key: bytes | None = None) -> RecordMetadata:
        """Send `event` and wait until Kafka acknowledged it (acks=all)."""
        topic = topic_for(event, self.topics)
        with produce_span(topic, event.job_id):
            future = await self.producer.send(
                topic, self.codec.encode(event), key=key or _key(event), headers=event_headers(event, self.source)
            )
        metadata: RecordMetadata = await future
        PRODUCED.labels(self.source, topic).inc()
        return metadata


def _key(event: Event) -> bytes | None:
    return event.job_id.encode() if event.job_id else None


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, fetching metadata first (for manual assignment)."""
    # aiokafka's public partitions_for_topic() only answers for topics already in its metadata.
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
