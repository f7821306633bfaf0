"""The codec's fast decode (logical types converted by hand) reads what fastavro's conversions read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jobrelay.jobs.events import JobProgress, ProgressKind
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.plain import millis_to_datetime, plan_for, uuid_text
from jobrelay.messaging.schemas import load_schemas, parse_version

PROGRESS = "jobrelay.events.JobProgress"


def _record(**changes: Any) -> dict[str, Any]:
    event = JobProgress(job_id=str(uuid.uuid4()), job_type="t", sequence=1, kind=ProgressKind.STARTED)
    return {"event_id": event.event_id, "job_id": event.job_id, "sequence": 1, "occurred_at": event.occurred_at,
            "job_type": "t", "kind": "STARTED", "attempt": 1, "percent": None, "message": None,
            "retry_at": None, "worker": None} | changes  # fmt: skip


def test_a_non_canonical_uuid_reads_as_its_canonical_text_as_before() -> None:
    codec = AvroCodec()
    upper = str(uuid.uuid4()).upper()
    data = codec.encode_record(PROGRESS, _record(job_id=upper))
    assert codec.decode(data).job_id == str(uuid.UUID(upper)) == upper.lower()
    assert str(codec.decode_record(data)[1]["job_id"]) == upper.lower()


def test_a_body_whose_uuid_is_not_one_is_undecodable() -> None:
    codec = AvroCodec()
    data = codec.encode_record(PROGRESS, _record())
    # After the 10-byte header: event_id, then job_id, each a length byte and 36 characters.
    start = 10 + 1 + 36 + 1
    data = data[:start] + b"z" * 36 + data[start + 36 :]
    with pytest.raises(SerializationError, match="undecodable"):
        codec.decode(data, topic="t", partition=0, offset=1)


def test_timestamps_and_uuids_are_converted_as_fastavro_converts_them() -> None:
    assert millis_to_datetime(1_764_582_615_123) == datetime(2025, 12, 1, 9, 50, 15, 123000, tzinfo=UTC)
    assert millis_to_datetime(-1) == datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    text = str(uuid.uuid4())
    assert uuid_text(text) is text
    assert uuid_text(text.replace("-", "")) == text
    with pytest.raises(ValueError, match="hexadecimal"):
        uuid_text("not-a-uuid")


def test_a_logical_type_it_does_not_convert_leaves_the_schema_to_fastavro() -> None:
    source = load_schemas().latest(PROGRESS).source
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
    fields = [*source["fields"], {"name": "cost", "type": ["null", decimal], "default": None}]
    version = parse_version("job-progress", 9, source | {"fields": fields})
    assert plan_for(version, version) is None
    assert plan_for(load_schemas().latest(PROGRESS), load_schemas().latest(PROGRESS)) is not None
