"""Reading Avro bodies without fastavro's logical-type conversion, converting the few fields events need.

fastavro turns every `uuid` into a `uuid.UUID` and every `timestamp-millis` into a datetime
through a generic per-field lookup; for jobrelay's events that is about half of a decode, and the
UUIDs were turned straight back into text. A plan reads the body with copies of the writer and
reader schemas stripped of their logical types (fastavro still resolves schema evolution), then
converts the top-level fields that had one: a uuid to its canonical text, a timestamp to an aware
UTC datetime, exactly as fastavro would have made them. A schema with a logical type the plan
cannot convert (or one nested inside a record, array or map) gets no plan: fastavro reads it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastavro import parse_schema

from jobrelay.messaging.schemas import SchemaVersion

__all__ = ["Plan", "millis_to_datetime", "plan_for", "uuid_text"]

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # fastavro's epoch, so the datetimes are the same objects


def uuid_text(value: str) -> str:
    """`str(uuid.UUID(value))`: the canonical form (ValueError when it is no UUID), fast when it is one."""
    return value if _CANONICAL_UUID.fullmatch(value) else str(uuid.UUID(value))


def millis_to_datetime(value: int) -> datetime:
    """A timestamp-millis as fastavro reads it (no float rounding: bpo-36439)."""
    return _EPOCH + timedelta(microseconds=value * 1000)


def _micros_to_datetime(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "uuid": uuid_text,
    "timestamp-millis": millis_to_datetime,
    "timestamp-micros": _micros_to_datetime,
}
Converter = tuple[str, Callable[[Any], Any], bool]  # field, conversion, whether null passes through


class _Unsupported(Exception):
    """A logical type this module does not convert itself."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read one writer schema's bodies as its reader schema, logical types converted by hand."""

    writer: Any  # parsed, without logical types
    reader: Any | None  # parsed, without logical types; None when writer and reader are the same
    converters: tuple[Converter, ...]

    def convert(self, record: dict[str, Any]) -> dict[str, Any]:
        """Apply the conversions in place (ValueError on a value that is not what its type says)."""
        for name, convert, nullable in self.converters:
            value = record[name]
            if value is not None or not nullable:
                record[name] = convert(value)
        return record


def plan_for(writer: SchemaVersion, reader: SchemaVersion) -> Plan | None:
    """The plan for `writer` read as `reader`, or None when fastavro must convert (see the module doc)."""
    try:
        converters = _converters(reader.source)
        if _converters(writer.source) != converters and writer.fingerprint != reader.fingerprint:
            return None  # logical types differ between the versions: let fastavro decide
        plain_writer = parse_schema(_strip(writer.source))
        same = writer.fingerprint == reader.fingerprint
        return Plan(plain_writer, None if same else parse_schema(_strip(reader.source)), converters)
    except _Unsupported:
        return None


def _converters(source: dict[str, Any]) -> tuple[Converter, ...]:
    found: list[Converter] = []
    for field in source["fields"]:
        kind = field["type"]
        nullable = isinstance(kind, list) and len(kind) == 2 and "null" in kind
        branch = next(b for b in kind if b != "null") if nullable else kind
        logical = branch.get("logicalType") if isinstance(branch, dict) else None
        if logical is not None:
            if logical not in _CONVERTERS:
                raise _Unsupported(logical)
            found.append((field["name"], _CONVERTERS[logical], nullable))
        elif _has_logical(branch if nullable else kind):
            raise _Unsupported(field["name"])
    return tuple(found)


def _has_logical(schema: Any) -> bool:
    if isinstance(schema, list):
        return any(_has_logical(branch) for branch in schema)
    if not isinstance(schema, dict):
        return False
    if "logicalType" in schema:
        return True
    nested = [f["type"] for f in schema.get("fields", ())] + [schema[k] for k in ("items", "values") if k in schema]
    return any(_has_logical(n) for n in nested)


def _strip(schema: Any) -> Any:
    """A copy of `schema` without logical types (a top-level field's only, as `_converters` allows)."""
    if isinstance(schema, list):
        return [_strip(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    if "logicalType" in schema:
        return schema["type"]
    stripped = dict(schema)
    if "fields" in schema:
        stripped["fields"] = [{**f, "type": _strip(f["type"])} for f in schema["fields"]]
    return stripped
