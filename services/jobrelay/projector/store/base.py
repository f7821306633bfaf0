"""What every view store does (memory, SQLite, later PostgreSQL), checked by one contract suite.

The store keeps each job's folded state and, in the same transaction, the next offset to read
of every (topic, partition) the view came from: the projector resumes from those, never from
consumer-group commits, so the view is exactly-once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from jobrelay.jobs.state import JobState, JobStatus, status_at
from jobrelay.projector.store.rows import JobRow, iso

__all__ = ["ChangeClock", "Cursor", "Fold", "JobQuery", "Loaded", "Position", "ViewStore", "matches", "sort_key"]

Position = tuple[str, int]
"""(topic, partition)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last row's (created_at, id); the list is newest first."""

    created_at: datetime
    job_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """Filters and a page of `GET /v1/jobs`; empty filters match everything."""

    now: datetime
    stall_after: timedelta
    statuses: frozenset[JobStatus] = field(default_factory=frozenset)
    types: frozenset[str] = field(default_factory=frozenset)
    created_after: datetime | None = None
    created_before: datetime | None = None
    after: Cursor | None = None
    limit: int = 50
    tenant: str | None = None  # only this tenant's jobs (None: every tenant's, for operators)


@dataclass(frozen=True, slots=True)
class Loaded:
    """Stored rows of some jobs, and which of them were purged."""

    rows: dict[str, JobRow]
    purged: frozenset[str]


class ChangeClock:
    """Numbers the view's changes: increasing across every job of one store, and across a rebuild.

    A number is at least the microseconds since the epoch, so a store rebuilt from the log (which
    starts counting afresh) numbers its changes above every number the old one gave out, and a
    client resuming a many-job stream after the swap misses nothing (it may see a job again).
    """

    def __init__(self, last: int = 0) -> None:
        self._last = last

    def take(self, count: int) -> int:
        """The first of `count` consecutive fresh numbers."""
        first = max(self._last + 1, time.time_ns() // 1000)
        self._last = first + max(count, 1) - 1
        return first


Fold = Callable[[Loaded], Sequence[JobRow]]
"""Given the stored rows of some jobs, the rows to store in their place (pure: it may run in any thread)."""


def sort_key(state: JobState) -> tuple[str, str]:
    """The list order (newest first, by descending key): created_at, then id."""
    created = state.created_at
    return (iso(created) if created is not None else "", state.job_id)


def matches(state: JobState, query: JobQuery) -> bool:
    """Whether `state` passes the query's filters and lies after its cursor (reference semantics)."""
    created = state.created_at
    if query.tenant is not None and state.tenant != query.tenant:
        return False
    if query.statuses and status_at(state, query.now, query.stall_after) not in query.statuses:
        return False
    if query.types and state.job_type not in query.types:
        return False
    if query.created_after is not None and (created is None or created < query.created_after):
        return False
    if query.created_before is not None and (created is None or created >= query.created_before):
        return False
    return query.after is None or sort_key(state) < (iso(query.after.created_at), query.after.job_id)


class ViewStore(Protocol):
    """A job status view with its source positions."""

    async def positions(self) -> dict[Position, int]:
        """The next offset to read of every (topic, partition) the view has read."""
        ...

    async def load(self, job_ids: Collection[str]) -> Loaded:
        """The stored rows of `job_ids` (missing ones absent), and which were purged."""
        ...

    async def write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        """Store `rows` and advance `positions`, in one transaction: all or nothing."""
        ...

    async def update(self, job_ids: Collection[str], fold: Fold, positions: Mapping[Position, int]) -> list[JobRow]:
        """`write(fold(load(job_ids)), positions)` as one transaction; returns the rows written."""
        ...

    async def get(self, job_id: str) -> JobRow | None:
        """One job, or None."""
        ...

    async def purged_at(self, job_id: str) -> datetime | None:
        """When the job was purged, or None if it was not."""
        ...

    async def head(self) -> int:
        """The number of the view's latest change (0 for an empty view)."""
        ...

    async def changes(
        self, after: int, *, job_ids: Collection[str] | None = None, tenant: str | None = None, limit: int = 500
    ) -> list[JobRow]:
        """Up to `limit` jobs whose latest change is numbered above `after`, in change order.

        Only `job_ids` when given, only `tenant`'s jobs when given. A row that was written without
        a new version (a duplicate record) keeps its change number.
        """
        ...

    async def query(self, query: JobQuery) -> list[JobRow]:
        """Up to `query.limit` jobs matching it, newest first."""
        ...

    async def purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        """Drop jobs whose terminal event happened before `terminal_before`, remembering their ids."""
        ...

    async def all_rows(self) -> list[JobRow]:
        """Every job, ordered by id (for rebuild comparisons and exports)."""
        ...

    async def close(self) -> None:
        """Release the store's resources."""
        ...
