"""Collect a run's evidence for the history checker: the clients' log, the topics, the view, a rebuild.

- what clients were told: a JSON-lines file, one object per request, `{"job_id": …, "status": 202,
  "callback": false}` (what `make chaos` writes; any load generator can);
- job-requested and job-completed, read from the beginning to their current end, read_committed;
- the view, from the projector's store (`JOBRELAY_PROJECTOR_*`: SQLite file or PostgreSQL);
- a full rebuild of the topics into a scratch SQLite file (not swapped in), to compare with the view;
- webhooks received: a JSON-lines file of `{"job_id": …, "webhook_id": …}` (optional).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from jobrelay.checker.history import Evidence, Told
from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobRequested
from jobrelay.messaging.clients import make_codec, make_consumer, topic_partitions
from jobrelay.messaging.codec import SerializationError
from jobrelay.projector.rebuild import rebuild
from jobrelay.projector.runtime import open_store
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store.base import ViewStore
from jobrelay.projector.store.rows import to_json
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = ["gather", "read_deliveries", "read_told"]


def read_told(path: Path) -> list[Told]:
    """The clients' log (JSON lines)."""
    told: list[Told] = []
    for line in path.read_text().splitlines():
        if line.strip():
            doc = json.loads(line)
            told.append(Told(str(doc["job_id"]), int(doc["status"]), bool(doc.get("callback", False))))
    return told


def read_deliveries(path: Path) -> dict[str, set[str]]:
    """Webhooks received (JSON lines of job_id and webhook_id)."""
    received: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            doc = json.loads(line)
            received.setdefault(str(doc["job_id"]), set()).add(str(doc.get("webhook_id") or ""))
    return {job: {w for w in ids if w} for job, ids in received.items()}


async def _read(kafka: KafkaSettings, topic: str, deadline_s: float = 120.0) -> list[object]:
    """Every decodable event of `topic` up to its end now (read_committed); poison is skipped."""
    codec = make_codec(kafka)
    consumer = make_consumer(kafka, "history-checker")
    await consumer.start()
    events: list[object] = []
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        stop_at = time.monotonic() + deadline_s
        while time.monotonic() < stop_at and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for record in (r for rs in batch.values() for r in rs):
                try:
                    events.append(codec.decode(record.value))
                except SerializationError:
                    continue  # dead-lettered by the services; not a job's history
    finally:
        await consumer.stop()
    return events


async def _rows(store: ViewStore) -> dict[str, tuple[str, str]]:
    return {row.job_id: (row.state.status.value, to_json(row.state)) for row in await store.all_rows()}


async def gather(
    kafka: KafkaSettings,
    topics: TopicSettings,
    projector: ProjectorSettings,
    told: list[Told],
    deliveries: Mapping[str, set[str]] | None = None,
    *,
    compare_rebuild: bool = True,
) -> Evidence:
    """The evidence of a run (after it drained)."""
    requested: dict[str, datetime | None] = {}
    for event in await _read(kafka, topics.requested):
        if isinstance(event, JobRequested) and event.job_id is not None:
            requested.setdefault(event.job_id, event.expires_at)
    outcomes: dict[str, list[str]] = {}
    for event in await _read(kafka, topics.completed):
        if isinstance(event, JobCompleted) and event.job_id is not None:
            outcomes.setdefault(event.job_id, []).append(event.status.value)
    store, _ = await open_store(projector)
    try:
        view = await _rows(store)
    finally:
        await store.close()
    rebuilt = None
    if compare_rebuild:
        with tempfile.TemporaryDirectory(prefix="jobrelay-check-") as scratch:
            report = await rebuild(
                ProjectorSettings(db_path=Path(scratch) / "rebuilt.sqlite"), kafka, topics, swap=False
            )
            fresh = await SqliteStore.open(report.generation)
            try:
                rebuilt = await _rows(fresh)
            finally:
                await fresh.close()
    return Evidence(told, requested, outcomes, view, rebuilt, deliveries)
