"""Avro encoding of jobrelay events, in either framing.

- Without a Schema Registry: Avro single-object encoding (`C3 01`, the writer schema's
  CRC-64-AVRO fingerprint, then the Avro binary body). Readers resolve the fingerprint against
  every schema version kept in `schemas/`.
- With one (`JOBRELAY_SCHEMA_REGISTRY_URL`): the Confluent wire format (magic byte 0, 4-byte
  schema id, body), so Confluent's own deserializers read our topics.

Schemas are parsed once; `decode` reads through a `plain.Plan` per writer schema (logical types
converted by hand, half the cost), `decode_record` through fastavro's own conversions. Every
failure surfaces as `SerializationError` (or its subclass `UnknownSchemaError`) carrying the
record's coordinates when the caller supplied them.
"""

from __future__ import annotations

import enum
import io
import json
import struct
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Protocol, TypeVar

from fastavro import schemaless_reader, schemaless_writer

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCancelRequested,
    JobCompleted,
    JobDeadLettered,
    JobError,
    JobProgress,
    JobRequested,
    ProgressKind,
    RecordHeader,
    TerminalStatus,
)
from jobrelay.messaging.plain import Plan, plan_for
from jobrelay.messaging.schemas import SchemaSet, SchemaVersion, load_schemas, parse_version

__all__ = [
    "AvroCodec",
    "ConfluentFraming",
    "Framing",
    "SerializationError",
    "SingleObjectFraming",
    "UnknownSchemaError",
    "record_name",
]

NAMESPACE = "jobrelay.events"
_EVENT_CLASSES: dict[str, type[Event]] = {
    f"{NAMESPACE}.{cls.__name__}": cls
    for cls in (JobRequested, JobProgress, JobCompleted, JobDeadLettered, JobCancelRequested)
}
_FIELDS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _EVENT_CLASSES.values()
}
_FIELD_SETS = {cls: frozenset(names) for cls, names in _FIELDS.items()}
_E = TypeVar("_E", bound=enum.Enum)


class SerializationError(Exception):
    """A value could not be encoded or decoded; says where the record came from."""

    def __init__(
        self, message: str, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        where = f" (topic {topic}, partition {partition}, offset {offset})" if topic is not None else ""
        super().__init__(f"{message}{where}")


class UnknownSchemaError(SerializationError):
    """The record names a writer schema (fingerprint or registry id) that cannot be found."""


def record_name(event: Event) -> str:
    """The Avro full name of an event's record."""
    return f"{NAMESPACE}.{type(event).__name__}"


class Framing(Protocol):
    """How the writer schema is identified in front of the Avro body."""

    def prefix(self, version: SchemaVersion) -> bytes:
        """The bytes written before a body encoded with `version`."""
        ...

    def writer_schema(self, data: bytes) -> tuple[SchemaVersion, int]:
        """The writer schema of `data` and where its body starts."""
        ...


class SingleObjectFraming:
    """Avro single-object encoding, resolved against every version in `schemas/`."""

    MAGIC = b"\xc3\x01"

    def __init__(self, schemas: SchemaSet) -> None:
        self._by_fingerprint = schemas.by_fingerprint()

    def prefix(self, version: SchemaVersion) -> bytes:
        """`C3 01` and the 8-byte fingerprint."""
        return self.MAGIC + version.fingerprint

    def writer_schema(self, data: bytes) -> tuple[SchemaVersion, int]:
        """Look the fingerprint up among every known version."""
        if len(data) < 10 or data[:2] != self.MAGIC:
            raise SerializationError("not Avro single-object encoding (no C3 01 marker)")
        version = self._by_fingerprint.get(data[2:10])
        if version is None:
            raise UnknownSchemaError(f"unknown schema fingerprint {data[2:10].hex()}")
        return version, 10


class ConfluentFraming:
    """Confluent wire format: magic 0, big-endian schema id, body.

    Subjects follow RecordNameStrategy (the record's full name), so the contract does not depend
    on topic names, which deployments may prefix. Registration happens once, at construction;
    an id seen for the first time is fetched once and cached.
    """

    def __init__(self, schemas: SchemaSet, client: Any) -> None:
        from confluent_kafka.schema_registry import Schema

        self._client = client
        self._ids: dict[bytes, int] = {}
        self._by_id: dict[int, SchemaVersion] = {}
        for version in schemas.versions:
            schema_id = client.register_schema(version.name, Schema(json.dumps(version.source), "AVRO"))
            self._ids[version.fingerprint] = schema_id
            self._by_id[schema_id] = version

    def prefix(self, version: SchemaVersion) -> bytes:
        """Magic byte 0 and the registry's schema id."""
        return struct.pack(">bI", 0, self._ids[version.fingerprint])

    def writer_schema(self, data: bytes) -> tuple[SchemaVersion, int]:
        """Resolve the schema id, asking the registry the first time an id is seen."""
        if len(data) < 5 or data[0] != 0:
            raise SerializationError("not Confluent wire format (no magic byte 0)")
        (schema_id,) = struct.unpack(">I", data[1:5])
        version = self._by_id.get(schema_id)
        if version is None:
            version = self._fetch(schema_id)
        return version, 5

    def _fetch(self, schema_id: int) -> SchemaVersion:
        try:
            registered = self._client.get_schema(schema_id)
            source = json.loads(registered.schema_str)
            version = parse_version("", -schema_id, source)
        except Exception as exc:  # the registry client raises several unrelated types
            raise UnknownSchemaError(f"schema id {schema_id} not found in the registry: {exc}") from exc
        self._by_id[schema_id] = version
        return version


class AvroCodec:
    """Encodes events as Avro in one framing and decodes them back, resolving schema evolution."""

    def __init__(
        self, schemas: SchemaSet | None = None, framing: Framing | None = None, pin: Mapping[str, int] | None = None
    ) -> None:
        """`pin` maps a record name to the schema version to write and read as (default: newest)."""
        self.schemas = schemas or load_schemas()
        self.framing: Framing = framing or SingleObjectFraming(self.schemas)
        pins = pin or {}
        self._current = {name: self._pinned(name, pins.get(name)) for name in self.schemas.names()}
        self._plans: dict[bytes, Plan | None] = {}  # by writer fingerprint

    def _pinned(self, name: str, version: int | None) -> SchemaVersion:
        if version is None:
            return self.schemas.latest(name)
        return next(v for v in self.schemas.versions if v.name == name and v.version == version)

    def encode(self, event: Event) -> bytes:
        """The framed Avro bytes of `event`."""
        return self.encode_record(record_name(event), _to_record(event))

    def encode_record(self, name: str, record: Mapping[str, Any]) -> bytes:
        """The framed Avro bytes of a plain record of the schema called `name`."""
        version = self._current.get(name)
        if version is None:
            raise SerializationError(f"no schema for record {name}")
        buffer = io.BytesIO()
        buffer.write(self.framing.prefix(version))
        try:
            schemaless_writer(buffer, version.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(f"cannot encode {name}: {exc}") from exc
        return buffer.getvalue()

    def decode(
        self, data: bytes | None, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> Event:
        """The event in `data`; raises SerializationError naming the coordinates given."""
        where: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
        writer, body = self._writer_of(data, where)
        plan = self._plan(writer)
        if plan is None:
            name, record = self.decode_record(data, **where)
        else:
            name, record = writer.name, self._read_plain(plan, writer, body, where)
        cls = _EVENT_CLASSES.get(name)
        if cls is None:
            raise SerializationError(f"record {name} is not a jobrelay event", **where)
        try:
            return _from_record(cls, record)
        except (ValueError, TypeError, KeyError) as exc:
            raise SerializationError(f"invalid {name}: {exc}", **where) from exc

    def _plan(self, writer: SchemaVersion) -> Plan | None:
        try:
            return self._plans[writer.fingerprint]
        except KeyError:
            plan = self._plans[writer.fingerprint] = plan_for(writer, self._current.get(writer.name, writer))
            return plan

    @staticmethod
    def _read_plain(plan: Plan, writer: SchemaVersion, body: bytes, where: dict[str, Any]) -> dict[str, Any]:
        try:
            record = schemaless_reader(io.BytesIO(body), plan.writer, plan.reader)
            if not isinstance(record, dict):
                raise SerializationError(f"{writer.name} body is not a record", **where)
            return plan.convert(record)
        except SerializationError:
            raise
        except Exception as exc:  # as in decode_record: fastavro's and the conversions' errors alike
            raise SerializationError(f"undecodable {writer.name} body: {exc!r}", **where) from exc

    def _writer_of(self, data: bytes | None, where: dict[str, Any]) -> tuple[SchemaVersion, bytes]:
        """The writer schema of `data` and its Avro body."""
        if data is None:
            raise SerializationError("record has no value (tombstone)", **where)
        try:
            writer, start = self.framing.writer_schema(data)
            return writer, data[start:]
        except UnknownSchemaError as exc:
            raise UnknownSchemaError(str(exc), **where) from exc
        except SerializationError as exc:
            raise SerializationError(str(exc), **where) from exc

    def decode_record(
        self, data: bytes | None, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The record name and the plain record in `data`, read as this codec's schema version."""
        where: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
        writer, body = self._writer_of(data, where)
        reader = self._current.get(writer.name, writer)
        try:
            # Same schema on both sides (the common case): skip fastavro's resolution pass.
            resolve = None if reader.fingerprint == writer.fingerprint else reader.parsed
            record = schemaless_reader(io.BytesIO(body), writer.parsed, resolve)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, SchemaResolutionError...
            raise SerializationError(f"undecodable {writer.name} body: {exc!r}", **where) from exc
        if not isinstance(record, dict):
            raise SerializationError(f"{writer.name} body is not a record", **where)
        return writer.name, record


def _to_record(event: Event) -> dict[str, Any]:
    record = {name: getattr(event, name) for name in _FIELDS[type(event)]}
    if isinstance(event, JobCompleted) and event.error is not None:
        record["error"] = {"code": event.error.code, "message": event.error.message, "retryable": event.error.retryable}
    elif isinstance(event, JobDeadLettered):
        record["original_headers"] = [{"key": h.key, "value": h.value} for h in event.original_headers]
    return record


def _from_record(cls: type[Event], record: dict[str, Any]) -> Event:
    # A record of the event's own schema version has exactly its fields: no copy needed.
    values = record if record.keys() == _FIELD_SETS[cls] else {n: record[n] for n in _FIELDS[cls] if n in record}
    values["event_id"] = str(values["event_id"])
    if values.get("job_id") is not None:
        values["job_id"] = str(values["job_id"])
    if cls is JobProgress:
        values["kind"] = _enum(ProgressKind, values["kind"])
    elif cls is JobCompleted:
        values["status"] = _enum(TerminalStatus, values["status"])
        error = values.get("error")
        values["error"] = JobError(**error) if error is not None else None
    elif cls is JobDeadLettered:
        values["reason"] = _enum(DeadLetterReason, values["reason"])
        values["original_headers"] = tuple(RecordHeader(**h) for h in values.get("original_headers", ()))
    return cls(**values)


def _enum(kind: type[_E], value: str) -> _E:
    member = kind._value2member_map_.get(value)  # what kind(value) looks up first, without its call overhead
    return member if member is not None else kind(value)  # type: ignore[return-value]
