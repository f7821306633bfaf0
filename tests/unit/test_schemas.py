"""The contracts in schemas/: documented, evolvable, and evolution works in both directions."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCancelRequested,
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
# One sample per kind of record, keyed by where its versions live: `<topic>/v<N>.avsc` for a
# topic's main event, `<topic>/<kind>.v<N>.avsc` for a second event type on the topic.
SAMPLES: dict[str, Event] = {
    "job-requested/v": JobRequested(job_id=JOB, job_type="demo.echo", payload="{}"),
    "job-requested/cancel.v": JobCancelRequested(job_id=JOB, reason="not needed", requested_by="billing"),
    "job-progress/v": JobProgress(job_id=JOB, job_type="demo.echo", sequence=1, kind=ProgressKind.STARTED),
    "job-completed/v": JobCompleted(job_id=JOB, job_type="demo.echo", sequence=2, status=TerminalStatus.SUCCEEDED),
    "job-dlq/v": JobDeadLettered(
        stage="processor", reason=DeadLetterReason.UNDECODABLE, source_topic="t", source_partition=0, source_offset=0
    ),
}


def _name(event: Event) -> str:
    return f"jobrelay.events.{type(event).__name__}"


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
    """The real schemas plus one newer version of each that adds an optional field."""
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root, ignore=shutil.ignore_patterns("*.md"))
    real = load_schemas()
    for where, sample in SAMPLES.items():
        newest = real.latest(_name(sample)).version
        source: dict[str, Any] = json.loads((root / f"{where}{newest}.avsc").read_text())
        source["fields"].append({"name": "priority", "type": ["null", "int"], "default": None, "doc": "Added later."})
        (root / f"{where}{newest + 1}.avsc").write_text(json.dumps(source))
    return load_schemas(root)


def _pair(schemas: SchemaSet, framing: str) -> tuple[AvroCodec, AvroCodec]:
    """(old service on today's newest versions, new service on the evolved ones).

    Without a registry the old service must have the newer file in its schemas/ to resolve the
    fingerprint (it still reads as its own version). With one, the old service knows only the
    real schemas and fetches the writer's newer version from the registry by id.
    """
    real = load_schemas()
    pin = {name: real.latest(name).version for name in real.names()}
    if framing == "single-object":
        return AvroCodec(schemas, pin=pin), AvroCodec(schemas)
    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})
    assert max(v.version for v in schemas.versions) > max(v.version for v in real.versions)
    return (
        AvroCodec(real, ConfluentFraming(real, registry)),
        AvroCodec(schemas, ConfluentFraming(schemas, registry)),
    )


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
@pytest.mark.parametrize("where", SAMPLES)
def test_old_reader_reads_a_newer_writers_record(tmp_path: Path, where: str, framing: str) -> None:
    schemas = _evolved(tmp_path)
    old, new = _pair(schemas, framing)
    name = _name(SAMPLES[where])
    record = _as_record(old, SAMPLES[where]) | {"priority": 7}
    data = new.encode_record(name, record)
    read_name, read = old.decode_record(data)
    assert read_name == name and "priority" not in read
    assert old.decode(data) == SAMPLES[where]


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
@pytest.mark.parametrize("where", SAMPLES)
def test_new_reader_reads_an_older_writers_record(tmp_path: Path, where: str, framing: str) -> None:
    schemas = _evolved(tmp_path)
    old, new = _pair(schemas, framing)
    data = old.encode(SAMPLES[where])
    _, read = new.decode_record(data)
    assert read["priority"] is None  # the new field takes its default
    assert new.decode(data) == SAMPLES[where]


def test_each_record_kind_is_in_its_own_file_and_the_cancel_request_lives_on_job_requested() -> None:
    by_name = {v.name: v.topic for v in load_schemas().versions}
    assert by_name["jobrelay.events.JobCancelRequested"] == "job-requested"
    assert {_name(sample) for sample in SAMPLES.values()} == set(by_name)


def _as_record(codec: AvroCodec, event: Event) -> dict[str, Any]:
    return codec.decode_record(codec.encode(event))[1]


def _kept_pairs() -> list[tuple[str, int, int]]:
    """(record name, older version, newer version) for every pair of kept versions of a record."""
    schemas = load_schemas()
    return [
        (name, old.version, new.version)
        for name in sorted(schemas.names())
        for old in schemas.versions
        for new in schemas.versions
        if old.name == name and new.name == name and old.version < new.version
    ]


@pytest.mark.parametrize(("name", "older", "newer"), _kept_pairs())
def test_every_kept_version_reads_every_other(name: str, older: int, newer: int) -> None:
    """Old readers read new records and new readers read old ones, for every kept version pair."""
    schemas = load_schemas()
    old, new = AvroCodec(schemas, pin={name: older}), AvroCodec(schemas, pin={name: newer})
    sample = next(event for event in SAMPLES.values() if _name(event) == name)
    assert old.decode(new.encode(sample)) == sample
    assert new.decode(old.encode(sample)) == sample


def test_the_readme_names_each_downstream_schemas_fingerprint() -> None:
    """Non-Python consumers look fingerprints up in the README's table: it must match the files."""
    readme = (default_schema_dir().parent / "README.md").read_text()
    table = dict(re.findall(r"\| `([0-9a-f]{16})` \| `schemas/([a-z-]+/v\d+\.avsc)`", readme))
    files = {
        v.fingerprint.hex(): f"{v.topic}/v{v.version}.avsc"
        for v in load_schemas().versions
        if v.topic in ("job-completed", "job-progress")
    }
    assert table == files, "a schema version was added: add its fingerprint to README's Downstream consumers"
