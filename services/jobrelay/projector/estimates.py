"""When a job that is not over yet will likely end: from recent jobs of its type, as the view saw them.

Each job that ends adds two durations to its type's window: how long it waited from its request
to its first start (which is where a backlog shows), and how long it ran from start to outcome.
A queued job is estimated to start after the median wait and end a median run later; a running
one a median run after it started; a job waiting for its retry a median run after the retry is
due. With no history for the type there is nothing to estimate from: None.

The windows live in memory and fill again from the jobs that end after a restart; they are
advice for `estimated_completion` and `Retry-After`, never part of the view itself.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from jobrelay.jobs.state import JobState, JobStatus
from jobrelay.projector.store.rows import JobRow

__all__ = ["Estimator", "retry_after"]

_WINDOW = 200  # durations kept per job type
_TYPES = 1000  # job types tracked at most (the oldest is forgotten first)


class Estimator:
    """Recent queue waits and run times per job type."""

    def __init__(self, window: int = _WINDOW) -> None:
        self._window = window
        self._waits: dict[str, deque[float]] = {}
        self._runs: dict[str, deque[float]] = {}

    def observe(self, rows: Iterable[JobRow]) -> None:
        """Learn from jobs that just ended (rows without both timestamps teach nothing)."""
        for row in rows:
            state = row.state
            created, started, ended = state.created_at, state.started_at, state.completed_at
            if state.job_type is None or created is None or started is None or ended is None:
                continue
            self._add(self._waits, state.job_type, (started - created).total_seconds())
            self._add(self._runs, state.job_type, (ended - started).total_seconds())

    def _add(self, windows: dict[str, deque[float]], job_type: str, seconds: float) -> None:
        window = windows.get(job_type)
        if window is None:
            if len(windows) >= _TYPES:
                del windows[next(iter(windows))]
            window = windows[job_type] = deque(maxlen=self._window)
        window.append(max(0.0, seconds))

    def estimate(self, state: JobState, status: JobStatus, now: datetime) -> datetime | None:
        """When the job will likely end (never before `now`), or None without history or once it is over."""
        if status.terminal or state.job_type is None:
            return None
        runs, waits = self._runs.get(state.job_type), self._waits.get(state.job_type)
        if not runs or not waits:
            return None
        run = timedelta(seconds=statistics.median(runs))
        if status is JobStatus.ACCEPTED:
            created = state.created_at or now
            start = max(now, created + timedelta(seconds=statistics.median(waits)))
        elif status is JobStatus.RETRYING and state.step is not None and state.step.retry_at is not None:
            start = max(now, state.step.retry_at)
        else:  # RUNNING or STALLED: from the first start (a later attempt's start is not kept)
            start = state.started_at or now
        return max(now, start + run)


def retry_after(estimate: datetime | None, now: datetime, default: int, cap: int) -> int:
    """Seconds a client should wait before polling again: until the estimate, within [1, cap]."""
    if estimate is None:
        return default
    return max(1, min(cap, math.ceil((estimate - now).total_seconds())))
