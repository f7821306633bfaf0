"""The Avro codec without a broker: framings, round trips, interop and bad input."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCompleted,
    JobDeadLettered,
    JobError,
    JobProgress,
    JobRequested,
    ProgressKind,
    RecordHeader,
    TerminalStatus,
)
from jobrelay.messaging.codec import AvroCodec, ConfluentFraming, SerializationError, UnknownSchemaError
from jobrelay.messaging.schemas import load_schemas

JOB = str(uuid.uuid4())
WHEN = datetime(2026, 11, 23, 9, 30, 15, 123000, tzinfo=UTC)

EVENTS: list[Event] = [
    JobRequested(
        job_id=JOB,
        job_type="report.generate",
        payload='{"rows": 10}',
        occurred_at=WHEN,
        timeout_s=30.0,
        expires_at=WHEN + timedelta(hours=1),
        callback_url="https://example.com/hook",
        idempotency_key="k-1",
        client_id="billing",
        request_hash="ab" * 32,
        max_attempts=5,
    ),
    JobProgress(
        job_id=JOB,
        job_type="report.generate",
        sequence=2,
        kind=ProgressKind.PROGRESS,
        percent=42.5,
        message="halfway",
        occurred_at=WHEN,
        worker="proc-1",
    ),
    JobProgress(
        job_id=JOB,
        job_type="report.generate",
        sequence=3,
        kind=ProgressKind.RETRY_SCHEDULED,
        attempt=2,
        retry_at=WHEN + timedelta(seconds=5),
        occurred_at=WHEN,
    ),
    JobCompleted(
        job_id=JOB,
        job_type="report.generate",
        sequence=4,
        status=TerminalStatus.SUCCEEDED,
        result='{"url": "s3://x"}',
        started_at=WHEN,
        occurred_at=WHEN,
    ),
    JobCompleted(
        job_id=JOB,
        job_type="report.generate",
        sequence=4,
        status=TerminalStatus.FAILED,
        error=JobError("timeout", "took longer than 30s", retryable=True),
        occurred_at=WHEN,
    ),
    JobDeadLettered(
        stage="processor",
        reason=DeadLetterReason.UNDECODABLE,
        source_topic="job-requested",
        source_partition=7,
        source_offset=12345,
        job_id=JOB,
        original_key=JOB.encode(),
        original_value=b"\x00garbage",
        original_headers=(RecordHeader("ce_id", b"1"), RecordHeader("empty", None)),
        error_message="bad bytes",
        attempts=1,
        occurred_at=WHEN,
    ),
]


def _registry() -> Any:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})


def _codecs() -> list[AvroCodec]:
    return [AvroCodec(), AvroCodec(framing=ConfluentFraming(load_schemas(), _registry()))]


def crc64_avro(data: bytes) -> bytes:
    """CRC-64-AVRO as the Avro specification defines it, little-endian (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


@pytest.mark.parametrize("codec", _codecs(), ids=["single-object", "confluent"])
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_in_both_framings(codec: AvroCodec, event: Event) -> None:
    assert codec.decode(codec.encode(event)) == event


def test_single_object_encoding_carries_the_spec_fingerprint() -> None:
    from fastavro.schema import to_parsing_canonical_form

    codec = AvroCodec()
    data = codec.encode(EVENTS[0])
    latest = codec.schemas.latest("jobrelay.events.JobRequested")
    canonical = to_parsing_canonical_form(latest.source).encode()
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == crc64_avro(canonical)


def test_confluent_framing_is_read_by_confluents_own_deserializer() -> None:
    registry = _registry()
    codec = AvroCodec(framing=ConfluentFraming(load_schemas(), registry))
    data = codec.encode(EVENTS[3])
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert registry.get_schema(schema_id).schema_str
    record = AvroDeserializer(registry)(data, SerializationContext("job-completed", MessageField.VALUE))
    assert record["status"] == "SUCCEEDED"
    assert str(record["job_id"]) == JOB
    assert json.loads(record["result"]) == {"url": "s3://x"}


def test_garbage_value_names_topic_partition_and_offset() -> None:
    with pytest.raises(SerializationError) as caught:
        AvroCodec().decode(b"{not avro}", topic="job-requested", partition=3, offset=99)
    message = str(caught.value)
    assert "job-requested" in message and "partition 3" in message and "offset 99" in message
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == ("job-requested", 3, 99)


def test_truncated_body_after_a_valid_header_is_a_serialization_error() -> None:
    data = AvroCodec().encode(EVENTS[0])
    with pytest.raises(SerializationError, match="undecodable"):
        AvroCodec().decode(data[:14], topic="job-requested", partition=0, offset=1)


def test_unknown_fingerprint_is_its_own_error() -> None:
    data = b"\xc3\x01" + b"\x01" * 8 + b"\x00"
    with pytest.raises(UnknownSchemaError, match="unknown schema fingerprint 0101010101010101"):
        AvroCodec().decode(data, topic="job-progress", partition=1, offset=2)


def test_unknown_registry_id_is_an_unknown_schema_error() -> None:
    codec = AvroCodec(framing=ConfluentFraming(load_schemas(), _registry()))
    with pytest.raises(UnknownSchemaError, match="schema id 4242"):
        codec.decode(struct.pack(">bI", 0, 4242) + b"\x00", topic="job-dlq", partition=0, offset=0)


def test_a_tombstone_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="tombstone"):
        AvroCodec().decode_record(None, topic="job-completed", partition=0, offset=5)


def test_encoding_an_invalid_event_is_a_serialization_error() -> None:
    bad = JobProgress(job_id="not-a-uuid", job_type="x", sequence="seven", kind=ProgressKind.STARTED)  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"cannot encode jobrelay\.events\.JobProgress"):
        AvroCodec().encode(bad)
