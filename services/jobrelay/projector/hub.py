"""Wakes readers when the view changes: per job (long-poll, SSE) and per position (truthful 404).

Readers subscribe *before* they read the store, then wait: a change committed between their
read and their wait still wakes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager

from jobrelay.projector.estimates import Estimator
from jobrelay.projector.store.base import Position

__all__ = ["ChangeHub", "Follow"]


class Follow:
    """A many-job reader's interest: some job ids, or every job (`everything`); `flag` is set on a change."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()
        self.ids: set[str] = set()
        self.everything = False

    def wants(self, job_ids: Collection[str]) -> bool:
        """Whether a change of `job_ids` concerns this reader."""
        return self.everything or not self.ids.isdisjoint(job_ids)


class ChangeHub:
    """In-process change notifications, published by the applier after each committed batch."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._follows: set[Follow] = set()
        self._positions: dict[Position, int] = {}
        self._advanced = asyncio.Event()
        self.estimates = Estimator()  # fed with the jobs each committed batch ended

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `job_id` changes while the block runs (clear it to wait again)."""
        flag = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(flag)
        try:
            yield flag
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(flag)
                if not watchers:
                    del self._watchers[job_id]

    @contextmanager
    def follow(self) -> Iterator[Follow]:
        """A Follow woken while the block runs whenever a job it names (or any, with `everything`) changes."""
        follow = Follow()
        self._follows.add(follow)
        try:
            yield follow
        finally:
            self._follows.discard(follow)

    def changed(self, job_ids: Collection[str]) -> None:
        """Wake everyone watching any of `job_ids`."""
        for job_id in job_ids:
            for flag in self._watchers.get(job_id, ()):
                flag.set()
        for follow in self._follows:
            if follow.wants(job_ids):
                follow.flag.set()

    def reset(self, positions: Mapping[Position, int]) -> None:
        """Start from a store's stored positions (on start, or after a rebuild was swapped in)."""
        self._positions = dict(positions)
        self._wake_position_waiters()

    def advanced(self, positions: Mapping[Position, int]) -> None:
        """Record the positions a committed batch reached."""
        self._positions.update(positions)
        self._wake_position_waiters()

    def position(self, position: Position) -> int:
        """The next offset the view will read of `position` (0 before anything was read)."""
        return self._positions.get(position, 0)

    def positions(self) -> dict[Position, int]:
        """Every known position."""
        return dict(self._positions)

    async def wait_advanced(self, timeout: float) -> None:
        """Return when the next batch is stored, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._advanced.wait(), timeout)

    def _wake_position_waiters(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()
