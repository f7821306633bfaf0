"""Following many jobs at once: the engine of `GET /v1/events` and of the WebSocket at `/v1/ws`.

A `Follower` keeps a cursor in the view's change numbers (`ViewStore.changes`): each time its
jobs change it reads the jobs changed after the cursor, in change order, and hands over the ones
whose version it has not handed over yet. Jobs named one by one start with their current
document (the snapshot), read *after* the cursor was taken, so a change in between is either in
the snapshot or after the cursor, and never handed over twice. Changes that happen between two
reads are conflated into the latest document, as on the per-job stream.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from jobrelay.jobs.state import JobStatus
from jobrelay.projector.hub import Follow
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.store.rows import JobRow
from jobrelay.security.keys import Principal

__all__ = ["Follower", "is_terminal"]

PAGE = 500  # rows per read of the changes


def is_terminal(row: JobRow) -> bool:
    """Whether the job is over (its stream has nothing more to say about it)."""
    return JobStatus(row.state.status).terminal


@dataclass
class Follower:
    """What one stream or connection follows, and what it has handed over.

    `cursor`: the change number everything at or below which was handed over (or predates the
    stream); `sent`: the version handed over per job named one by one (bounded by the cap on them).
    """

    runtime: Runtime
    caller: Principal
    follow: Follow
    cursor: int = 0
    sent: dict[str, int] = field(default_factory=dict)

    @property
    def tenant(self) -> str | None:
        """Whose jobs `everything` means: the caller's tenant's, every tenant's for an operator."""
        return None if self.caller.admin else self.caller.tenant

    def name(self, rows: Iterable[JobRow], after: Mapping[str, int] | None = None) -> list[JobRow]:
        """Follow these jobs, read after the cursor was set; returns those newer than the client saw.

        `after`: the version the client saw per job (a resumed WebSocket); 0 for the rest.
        """
        fresh: list[JobRow] = []
        for row in rows:
            seen = max((after or {}).get(row.job_id, 0), self.sent.get(row.job_id, 0))
            self.follow.ids.add(row.job_id)
            if row.version > seen:
                fresh.append(row)
            self.sent[row.job_id] = max(seen, row.version)
        return fresh

    def resume(self, job_ids: Iterable[str]) -> None:
        """Follow these jobs from the cursor on: every change after it is handed over, nothing before."""
        for job_id in job_ids:
            self.follow.ids.add(job_id)
            self.sent.setdefault(job_id, 0)

    def forget(self, job_ids: Collection[str]) -> None:
        """Stop following these jobs."""
        for job_id in job_ids:
            self.follow.ids.discard(job_id)
            self.sent.pop(job_id, None)

    async def changed(self) -> list[JobRow]:
        """Every followed job changed since the last call, in change order, each version once."""
        out: list[JobRow] = []
        while True:
            ids = None if self.follow.everything else self.follow.ids
            if ids is not None and not ids:
                return out
            rows = await self.runtime.store.changes(self.cursor, job_ids=ids, tenant=self.tenant, limit=PAGE)
            for row in rows:
                self.cursor = max(self.cursor, row.change)
                if self._fresh(row):
                    out.append(row)
            if len(rows) < PAGE:
                return out

    def _fresh(self, row: JobRow) -> bool:
        sent = self.sent.get(row.job_id)
        if sent is None:
            return self.follow.everything  # a job seen only through `everything`: its change number is new
        if row.version <= sent:
            return False  # the snapshot had it already
        self.sent[row.job_id] = row.version
        return True
