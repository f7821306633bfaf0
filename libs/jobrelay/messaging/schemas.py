"""The Avro contracts in `schemas/`: every version, parsed once, indexed by fingerprint.

`schemas/<topic>/v<N>.avsc` holds version N of the main event written to <topic>, and
`schemas/<topic>/<kind>.v<N>.avsc` version N of a second event type on the same topic (e.g.
`job-requested/cancel.v1.avsc`, the cancel request that must follow the job's request on its
partition); per record name, the highest N is the one jobrelay writes and reads into. Older
versions stay so that records written with them (without a Schema Registry: single-object
encoding) can still be resolved by fingerprint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = ["SchemaSet", "SchemaVersion", "default_schema_dir", "load_schemas"]

_VERSION_FILE = re.compile(r"^(?:[a-z][a-z0-9-]*\.)?v(\d+)\.avsc$")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one event schema, parsed and fingerprinted."""

    topic: str
    version: int
    name: str  # the record's full name, e.g. jobrelay.events.JobCompleted
    source: dict[str, Any]  # the schema as written (JSON), for registries
    parsed: Any  # fastavro's parsed form, reused for every record
    fingerprint: bytes  # CRC-64-AVRO of the Parsing Canonical Form, little-endian


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """All versions of all schemas, with the newest per record name."""

    versions: tuple[SchemaVersion, ...]

    def latest(self, name: str) -> SchemaVersion:
        """The newest version of the record called `name`."""
        candidates = [v for v in self.versions if v.name == name]
        if not candidates:
            raise KeyError(name)
        return max(candidates, key=lambda v: v.version)

    def by_fingerprint(self) -> dict[bytes, SchemaVersion]:
        """Every version, keyed by its fingerprint."""
        return {v.fingerprint: v for v in self.versions}

    def names(self) -> set[str]:
        """The record names this set knows."""
        return {v.name for v in self.versions}


def default_schema_dir() -> Path:
    """`schemas/` of the checkout, or the copy packaged into the wheel."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "schemas"
        if (candidate / "job-requested").is_dir():
            return candidate
    return Path(str(resources.files("jobrelay") / "_schemas"))


def parse_version(topic: str, version: int, source: dict[str, Any]) -> SchemaVersion:
    """Parse one schema and compute its fingerprint."""
    parsed = parse_schema(source)  # marked as parsed, so fastavro never parses it again
    canonical = to_parsing_canonical_form(source)
    name = f"{source.get('namespace', '')}.{source['name']}".lstrip(".")
    return SchemaVersion(topic, version, name, source, parsed, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")))


@cache
def load_schemas(directory: Path | None = None) -> SchemaSet:
    """Read and parse every `*.avsc` under `directory` (once per process)."""
    root = directory or default_schema_dir()
    versions = []
    for path in sorted(root.glob("*/*.avsc")):
        match = _VERSION_FILE.match(path.name)
        if match:
            versions.append(parse_version(path.parent.name, int(match.group(1)), json.loads(path.read_text())))
    if not versions:
        raise FileNotFoundError(f"no Avro schemas under {root}")
    return SchemaSet(tuple(versions))
