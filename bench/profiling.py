"""Reading py-spy's collapsed stacks: the share of samples in each cost category. Pure code.

A sample counts towards every category one of its frames belongs to (inclusive: Avro decode
called from the consumer loop counts for Avro and for jobrelay), so shares do not add up to 100.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "CATEGORIES",
    "categorize",
    "cpu_seconds",
    "format_shares",
    "parse_collapsed",
    "read_collapsed",
    "tree_cpu_seconds",
]

# category -> substrings of a frame ("function (path/file.py:line)") that place it there
CATEGORIES: dict[str, tuple[str, ...]] = {
    "Avro encode/decode": ("/fastavro/", "/messaging/codec.py"),
    "aiokafka (all)": ("/aiokafka/",),
    "Kafka transactions": ("_transaction", "/transaction_manager.py", "_do_txn_commit"),
    "socket writes (asyncio transport)": ("_SelectorSocketTransport.write",),
    "HTTP server (uvicorn/h11/starlette/fastapi)": ("/uvicorn/", "/h11/", "/httptools/", "/starlette/", "/fastapi/"),
    "pydantic": ("/pydantic/", "/pydantic_core/"),
    "SQLite (aiosqlite, sqlite3, store)": ("/sqlite3/", "/aiosqlite/", "/store/sqlite.py"),
    "OpenTelemetry": ("/opentelemetry/",),
    "logging (structlog/logging)": ("/structlog/", "/logging/__init__.py"),
    "Prometheus metrics": ("/prometheus_client/",),
    "JSON": ("/json/", "orjson"),
    "event loop (asyncio, selectors)": ("/asyncio/", "/selectors.py"),
    "jobrelay code": ("/jobrelay/",),
}


def parse_collapsed(text: str) -> dict[str, int]:
    """`frame;frame;... count` lines (py-spy `--format raw`) → stack → samples."""
    stacks: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] = stacks.get(stack, 0) + int(count)
    return stacks


def read_collapsed(path: Path) -> dict[str, int]:
    """`parse_collapsed` of a file; empty when py-spy wrote none."""
    return parse_collapsed(path.read_text(errors="replace")) if path.exists() else {}


def categorize(stacks: Mapping[str, int]) -> dict[str, float]:
    """Category → fraction of all samples with at least one frame in it (0..1)."""
    total = sum(stacks.values())
    if not total:
        return {}
    shares: dict[str, float] = {}
    for name, needles in CATEGORIES.items():
        hits = sum(count for stack, count in stacks.items() if any(n in stack for n in needles))
        shares[name] = hits / total
    return shares


def format_shares(shares: Mapping[str, float]) -> str:
    """One `  42.0 %  category` line per category, largest first."""
    ordered = sorted(shares.items(), key=lambda item: -item[1])
    return "\n".join(f"  {share * 100:5.1f} %  {name}" for name, share in ordered)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except OSError:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of `pid` and of every descendant alive now (a service with worker processes)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += cpu_seconds(current)
        pending += _children(current)
    return total
