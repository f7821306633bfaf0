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
from jobrelay.projector.store.base import Position, ViewStore
from jobrelay.projector.store.rows import JobRow

__all__ = ["EVENTS_APPLIED", "Projector"]

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
        rows, changed, applied = await self._fold(staged)
        positions: dict[Position, int] = {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
        await self.store.write(rows, positions)
        EVENTS_APPLIED.inc(applied)
        self.hub.advanced(positions)
        self.hub.changed(changed)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _fold(self, staged: Sequence[Received]) -> tuple[list[JobRow], list[str], int]:
        """The new rows, the ids of the jobs whose view changed, and how many events were applied."""
        by_job: dict[str, list[Received]] = defaultdict(list)
        for received in staged:
            if received.event.job_id is None:
                EVENTS_IGNORED.labels("no_job_id").inc()
                continue
            by_job[received.event.job_id].append(received)
        loaded = await self.store.load(list(by_job))
        rows: list[JobRow] = []
        changed: list[str] = []
        applied = 0
        for job_id, events in by_job.items():
            if job_id in loaded.purged:
                EVENTS_IGNORED.labels("purged").inc(len(events))  # a late event of a purged job stays purged
                continue
            row = self._apply(loaded.rows.get(job_id), events)
            rows.append(row)
            applied += len(events)
            if row.version != getattr(loaded.rows.get(job_id), "version", 0):
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
