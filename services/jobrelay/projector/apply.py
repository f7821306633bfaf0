"""Applies consumed events to the view: fold per job, then one transaction with the positions.

The consumer loop hands each decoded batch to `stage`, then the next offsets of every
partition in the batch to `flush`, which folds the staged events into the stored states and
writes states and offsets together. A crash anywhere before the commit loses the whole batch
and its offsets, so the restarted projector reads it again: no event applied twice, none skipped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import structlog
from aiokafka import TopicPartition
from prometheus_client import Counter, Histogram

from jobrelay.jobs.state import JobState, evolve
from jobrelay.messaging.loop import Received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.tracing import consume_span
from jobrelay.projector.hub import ChangeHub
from jobrelay.projector.store.base import Loaded, Position, ViewStore
from jobrelay.projector.store.rows import JobRow

__all__ = ["EVENTS_APPLIED", "Projector", "by_job"]

log = get_logger(__name__)

EVENTS_APPLIED = Counter("jobrelay_projector_events_applied_total", "Events applied to the view (rate = events/s)")
EVENTS_IGNORED = Counter("jobrelay_projector_events_ignored_total", "Events not applied", ["reason"])
BATCH_SECONDS = Histogram("jobrelay_projector_batch_seconds", "Time to fold and commit one batch")


class Projector:
    """Folds batches of events into a ViewStore and tells the hub what changed."""

    def __init__(self, store: ViewStore, hub: ChangeHub, *, requested_topic: str, trace: bool = True) -> None:
        self.store, self.hub, self.requested_topic, self.trace = store, hub, requested_topic, trace
        self._staged: list[Received] = []

    async def stage(self, batch: Sequence[Received]) -> None:
        """Keep a decoded batch until its offsets arrive (the ConsumerLoop batch handler)."""
        self._staged.extend(batch)

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Fold the staged events and store them with `offsets`, in one transaction."""
        started = time.perf_counter()
        staged, self._staged = self._staged, []
        batch = _Batch(self, staged)
        positions: dict[Position, int] = {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
        rows = await self.store.update(list(batch.by_job), batch, positions)
        EVENTS_APPLIED.inc(batch.applied)
        self.hub.advanced(positions)
        self.hub.changed(batch.changed)
        changed = set(batch.changed)
        self.hub.estimates.observe(r for r in rows if r.state.outcome is not None and r.job_id in changed)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    def fold(self, by_job: Mapping[str, Sequence[Received]], loaded: Loaded) -> tuple[list[JobRow], list[str], int]:
        """The new rows, the ids of the jobs whose view changed, and how many events were applied."""
        rows: list[JobRow] = []
        changed: list[str] = []
        applied = 0
        for job_id, events in by_job.items():
            if job_id in loaded.purged:
                EVENTS_IGNORED.labels("purged").inc(len(events))  # a late event of a purged job stays purged
                continue
            before = loaded.rows.get(job_id)
            row = self._apply(before, events)
            rows.append(row)
            applied += len(events)
            if row.version != (before.version if before is not None else 0):
                changed.append(job_id)
        return rows, changed, applied

    def _apply(self, row: JobRow | None, events: Sequence[Received]) -> JobRow:
        before: JobState | None = row.state if row is not None else None
        state = self._evolve(before, events[0])
        for received in events[1:]:
            state = self._evolve(state, received)
        version = row.version if row is not None else 0
        applied = (row.applied if row is not None else 0) + len(events)
        if state != before:
            version += 1
            if self.trace:  # a rebuild neither traces nor logs each job
                log.debug("job view changed", job_id=state.job_id, status=state.status.value, version=version)
        return JobRow(state, version, applied)

    def _evolve(self, state: JobState | None, received: Received) -> JobState:
        if not self.trace:
            return evolve(state, received.event, requested_topic=self.requested_topic)
        job_id = received.event.job_id
        with (
            consume_span(received.topic, received.partition, received.offset, job_id, received.headers),
            structlog.contextvars.bound_contextvars(job_id=job_id),
        ):
            return evolve(state, received.event, requested_topic=self.requested_topic)


def by_job(staged: Sequence[Received]) -> dict[str, list[Received]]:
    """The staged events grouped by job, in arrival order (events without a job id are counted and left out)."""
    grouped: dict[str, list[Received]] = defaultdict(list)
    for received in staged:
        if received.event.job_id is None:
            EVENTS_IGNORED.labels("no_job_id").inc()
            continue
        grouped[received.event.job_id].append(received)
    return grouped


class _Batch:
    """One flush's fold, run by the store inside its transaction (in the writer's thread for SQLite)."""

    def __init__(self, projector: Projector, staged: Sequence[Received]) -> None:
        self.projector, self.by_job = projector, by_job(staged)
        self.changed: list[str] = []
        self.applied = 0

    def __call__(self, loaded: Loaded) -> list[JobRow]:
        rows, self.changed, self.applied = self.projector.fold(self.by_job, loaded)
        return rows
