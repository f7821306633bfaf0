"""Estimates from recent jobs of the same type: none without history, never in the past, a bounded Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobrelay.jobs.events import JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.jobs.state import JobState, JobStatus, evolve
from jobrelay.projector.estimates import Estimator, retry_after
from jobrelay.projector.store.rows import JobRow

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _job(job_id: str, job_type: str, *, wait_s: float | None = None, run_s: float | None = None) -> JobState:
    """A job requested at T0 that started after `wait_s` and ended `run_s` later (each when given)."""
    state = evolve(
        None, JobRequested(job_id=job_id, job_type=job_type, payload="{}", occurred_at=T0), requested_topic="r"
    )
    if wait_s is not None:
        started = T0 + timedelta(seconds=wait_s)
        start = JobProgress(
            job_id=job_id, job_type=job_type, sequence=sequence(1, 1), kind=ProgressKind.STARTED, occurred_at=started
        )
        state = evolve(state, start, requested_topic="r")
        if run_s is not None:
            end = JobCompleted(
                job_id=job_id,
                job_type=job_type,
                sequence=terminal_sequence(1),
                status=TerminalStatus.SUCCEEDED,
                occurred_at=started + timedelta(seconds=run_s),
            )
            state = evolve(state, end, requested_topic="r")
    return state


def test_no_history_no_estimate_and_the_default_retry_after() -> None:
    estimator = Estimator()
    queued = _job("q", "report")
    assert estimator.estimate(queued, JobStatus.ACCEPTED, T0) is None
    assert retry_after(None, T0, default=2, cap=60) == 2


def test_a_queued_job_is_estimated_from_the_median_wait_and_run_of_its_type() -> None:
    estimator = Estimator()
    estimator.observe(JobRow(_job(f"j{n}", "report", wait_s=n, run_s=10 * n), 1, 1) for n in (1, 2, 3))
    estimator.observe([JobRow(_job("other", "email", wait_s=100, run_s=100), 1, 1)])
    queued = _job("q", "report")
    assert estimator.estimate(queued, JobStatus.ACCEPTED, T0) == T0 + timedelta(seconds=2 + 20)
    later = T0 + timedelta(seconds=60)  # overdue: never in the past, a median run from now
    assert estimator.estimate(queued, JobStatus.ACCEPTED, later) == later + timedelta(seconds=20)


def test_a_running_job_is_estimated_from_its_start_and_a_finished_one_not_at_all() -> None:
    estimator = Estimator()
    estimator.observe([JobRow(_job("j", "report", wait_s=1, run_s=30), 1, 1)])
    running = _job("r", "report", wait_s=5)
    assert estimator.estimate(running, JobStatus.RUNNING, T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=35)
    done = _job("d", "report", wait_s=1, run_s=1)
    assert estimator.estimate(done, JobStatus.SUCCEEDED, T0) is None


def test_retry_after_follows_the_estimate_within_bounds_and_is_never_zero() -> None:
    assert retry_after(T0 + timedelta(seconds=12.2), T0, default=2, cap=60) == 13
    assert retry_after(T0 - timedelta(seconds=5), T0, default=2, cap=60) == 1
    assert retry_after(T0 + timedelta(hours=1), T0, default=2, cap=60) == 60
