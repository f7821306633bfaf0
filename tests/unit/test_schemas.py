"""The contracts in schemas/: documented, evolvable, and evolution works in both directions."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCompleted,
    JobDeadLettered,
    JobProgress,
    JobRequested,
    ProgressKind,
    TerminalStatus,
)
from jobrelay.messaging.codec import AvroCodec, ConfluentFraming
from jobrelay.messaging.schemas import SchemaSet, default_schema_dir, load_schemas

TOPICS = ["job-requested", "job-progress", "job-completed", "job-dlq"]
JOB = str(uuid.uuid4())
SAMPLES: dict[str, Event] = {
    "job-requested": JobRequested(job_id=JOB, job_type="demo.echo", payload="{}"),
    "job-progress": JobProgress(job_id=JOB, job_type="demo.echo", sequence=1, kind=ProgressKind.STARTED),
    "job-completed": JobCompleted(job_id=JOB, job_type="demo.echo", sequence=2, status=TerminalStatus.SUCCEEDED),
    "job-dlq": JobDeadLettered(
        stage="processor", reason=DeadLetterReason.UNDECODABLE, source_topic="t", source_partition=0, source_offset=0
    ),
}


def test_every_topic_has_a_documented_namespaced_schema() -> None:
    schemas = load_schemas()
    assert {v.topic for v in schemas.versions} == set(TOPICS)
    for version in schemas.versions:
        assert version.source["namespace"] == "jobrelay.events"
        assert version.source["doc"]
        for field in version.source["fields"]:
            assert field.get("doc"), f"{version.name}.{field['name']} has no doc"


def test_optional_fields_default_to_null_so_they_can_evolve() -> None:
    for version in load_schemas().versions:
        for field in version.source["fields"]:
            if isinstance(field["type"], list) and "null" in field["type"]:
                assert field["type"][0] == "null" and field.get("default", "missing") is None, field["name"]


def _evolved(tmp_path: Path) -> SchemaSet:
    """The real schemas plus a v2 of each that adds an optional field."""
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root, ignore=shutil.ignore_patterns("*.md"))
    for topic in TOPICS:
        source: dict[str, Any] = json.loads((root / topic / "v1.avsc").read_text())
        source["fields"].append({"name": "priority", "type": ["null", "int"], "default": None, "doc": "Added in v2."})
        (root / topic / "v2.avsc").write_text(json.dumps(source))
    return load_schemas(root)


def _pair(schemas: SchemaSet, framing: str) -> tuple[AvroCodec, AvroCodec]:
    """(old service on v1, new service on v2).

    Without a registry the old service must have the v2 file in its schemas/ to resolve the
    fingerprint (it still reads as v1). With one, the old service knows only v1 and fetches the
    writer's v2 from the registry by id.
    """
    pin = dict.fromkeys(schemas.names(), 1)
    if framing == "single-object":
        return AvroCodec(schemas, pin=pin), AvroCodec(schemas)
    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})
    v1_only = load_schemas()
    assert {v.version for v in v1_only.versions} == {1}
    return (
        AvroCodec(v1_only, ConfluentFraming(v1_only, registry)),
        AvroCodec(schemas, ConfluentFraming(schemas, registry)),
    )


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
@pytest.mark.parametrize("topic", TOPICS)
def test_old_reader_reads_a_newer_writers_record(tmp_path: Path, topic: str, framing: str) -> None:
    schemas = _evolved(tmp_path)
    old, new = _pair(schemas, framing)
    name = f"jobrelay.events.{type(SAMPLES[topic]).__name__}"
    record = _as_record(old, SAMPLES[topic]) | {"priority": 7}
    data = new.encode_record(name, record)
    read_name, read = old.decode_record(data)
    assert read_name == name and "priority" not in read
    assert old.decode(data) == SAMPLES[topic]


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
@pytest.mark.parametrize("topic", TOPICS)
def test_new_reader_reads_an_older_writers_record(tmp_path: Path, topic: str, framing: str) -> None:
    schemas = _evolved(tmp_path)
    old, new = _pair(schemas, framing)
    data = old.encode(SAMPLES[topic])
    _, read = new.decode_record(data)
    assert read["priority"] is None  # the new field takes its default
    assert new.decode(data) == SAMPLES[topic]


def _as_record(codec: AvroCodec, event: Event) -> dict[str, Any]:
    return codec.decode_record(codec.encode(event))[1]
