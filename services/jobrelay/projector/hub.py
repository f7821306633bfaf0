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

__all__ = ["ChangeHub"]


class ChangeHub:
    """In-process change notifications, published by the applier after each committed batch."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
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

    def changed(self, job_ids: Collection[str]) -> None:
        """Wake everyone watching any of `job_ids`."""
        for job_id in job_ids:
            for flag in self._watchers.get(job_id, ()):
                flag.set()

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
