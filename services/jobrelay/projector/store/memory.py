"""The in-memory view store: the reference implementation of the contract, for tests and demos."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from jobrelay.projector.store.base import ChangeClock, Fold, JobQuery, Loaded, Position, matches, sort_key
from jobrelay.projector.store.rows import JobRow

__all__ = ["MemoryStore"]


class MemoryStore:
    """A ViewStore in dictionaries; `write` is atomic because it never awaits midway."""

    def __init__(self) -> None:
        self._rows: dict[str, JobRow] = {}
        self._positions: dict[Position, int] = {}
        self._purged: dict[str, datetime] = {}
        self._changed: dict[str, int] = {}  # each job's change number
        self._clock = ChangeClock()

    async def positions(self) -> dict[Position, int]:
        """The next offset to read per (topic, partition)."""
        return dict(self._positions)

    async def load(self, job_ids: Collection[str]) -> Loaded:
        """Stored rows of `job_ids` and the purged among them."""
        rows = {i: self._rows[i] for i in job_ids if i in self._rows}
        return Loaded(rows, frozenset(i for i in job_ids if i in self._purged))

    async def write(self, rows: Sequence[JobRow], positions: Mapping[Position, int]) -> None:
        """Store rows and positions together (all checked before anything changes)."""
        for row in rows:
            if row.state.created_at is None or row.state.last_at is None:
                raise ValueError(f"job {row.job_id} has no event yet and cannot be stored")
        first = self._clock.take(len(rows))
        for number, row in enumerate(rows, first):
            before = self._rows.get(row.job_id)
            if before is None or before.version != row.version:
                self._changed[row.job_id] = number
            self._rows[row.job_id] = row
        self._positions.update(positions)

    async def update(self, job_ids: Collection[str], fold: Fold, positions: Mapping[Position, int]) -> list[JobRow]:
        """Load, fold and write without awaiting in between: nothing else runs meanwhile."""
        rows = list(fold(await self.load(job_ids)))
        await self.write(rows, positions)
        return rows

    async def get(self, job_id: str) -> JobRow | None:
        """One job or None."""
        return self._rows.get(job_id)

    async def purged_at(self, job_id: str) -> datetime | None:
        """When `job_id` was purged."""
        return self._purged.get(job_id)

    async def head(self) -> int:
        """The latest change number."""
        return max(self._changed.values(), default=0)

    async def changes(
        self, after: int, *, job_ids: Collection[str] | None = None, tenant: str | None = None, limit: int = 500
    ) -> list[JobRow]:
        """Jobs changed after `after`, in change order."""
        wanted = self._rows.keys() if job_ids is None else [i for i in set(job_ids) if i in self._rows]
        found = [
            (self._changed[i], self._rows[i])
            for i in wanted
            if self._changed[i] > after and (tenant is None or self._rows[i].state.tenant == tenant)
        ]
        found.sort(key=lambda pair: pair[0])
        return [dataclasses.replace(row, change=number) for number, row in found[:limit]]

    async def query(self, query: JobQuery) -> list[JobRow]:
        """Matching jobs, newest first."""
        found = [row for row in self._rows.values() if matches(row.state, query)]
        found.sort(key=lambda row: sort_key(row.state), reverse=True)
        return found[: query.limit]

    async def purge(self, terminal_before: datetime, now: datetime) -> list[str]:
        """Drop jobs that finished before `terminal_before`."""
        gone = [
            row.job_id
            for row in self._rows.values()
            if row.state.outcome is not None and row.state.outcome.at < terminal_before
        ]
        for job_id in gone:
            del self._rows[job_id]
            del self._changed[job_id]
            self._purged[job_id] = now
        return sorted(gone)

    async def all_rows(self) -> list[JobRow]:
        """Every job by id."""
        return [self._rows[i] for i in sorted(self._rows)]

    async def close(self) -> None:
        """Nothing to release."""
