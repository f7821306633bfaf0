"""The fold: any order, any duplicates, same state; nothing moves a job backwards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCancelRequested,
    JobCompleted,
    JobDeadLettered,
    JobError,
    JobProgress,
    JobRequested,
    ProgressKind,
    TerminalStatus,
)
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.jobs.state import JobStatus, evolve, fold, status_at

REQUESTED = "job-requested"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _life(
    job: str, attempts: int, steps: int, ending: TerminalStatus | None, webhook: bool, cancels: int = 0
) -> list[Event]:
    """An ordered log: request, attempts (progress, retries), cancel requests, maybe an end and a webhook failure."""
    events: list[Event] = [JobRequested(job_id=job, job_type="t", payload="{}", occurred_at=T0, max_attempts=attempts)]
    clock = iter(T0 + timedelta(seconds=i) for i in range(1, 10_000))
    for attempt in range(1, attempts + 1):
        kinds = [ProgressKind.STARTED] + [ProgressKind.PROGRESS, ProgressKind.HEARTBEAT] * steps
        if attempt < attempts:
            kinds.append(ProgressKind.RETRY_SCHEDULED)
        for n, kind in enumerate(kinds, start=1):
            percent = 100.0 * n / len(kinds) if kind is ProgressKind.PROGRESS else None
            events.append(
                JobProgress(
                    job_id=job,
                    job_type="t",
                    sequence=sequence(attempt, n),
                    kind=kind,
                    attempt=attempt,
                    percent=percent,
                    message=f"step {n}" if percent else None,
                    occurred_at=next(clock),
                )
            )
    for n in range(cancels):  # a client asking (again) while the job runs: the earliest one counts
        events.append(JobCancelRequested(job_id=job, occurred_at=next(clock), reason=f"ask {n}"))
    if ending is not None:
        error = None if ending is TerminalStatus.SUCCEEDED else JobError("boom", "it broke")
        end = terminal_sequence(attempts)
        events.append(
            JobCompleted(
                job_id=job,
                job_type="t",
                sequence=end,
                status=ending,
                attempt=attempts,
                result='{"ok": 1}',
                error=error,
                occurred_at=next(clock),
            )
        )
    if webhook:
        events.append(
            JobDeadLettered(
                stage="notifier",
                reason=DeadLetterReason.WEBHOOK_UNDELIVERABLE,
                source_topic="job-completed",
                source_partition=0,
                source_offset=1,
                job_id=job,
                attempts=8,
                last_status=500,
                occurred_at=next(clock),
            )
        )
    return events


lives = st.builds(
    _life,
    job=st.just(str(uuid.UUID(int=7))),
    attempts=st.integers(1, 3),
    steps=st.integers(0, 3),
    ending=st.none() | st.sampled_from(TerminalStatus),
    webhook=st.booleans(),
    cancels=st.integers(0, 2),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=lives)
def test_any_reordering_or_duplication_folds_to_the_ordered_state(data: st.DataObject, events: list[Event]) -> None:
    duplicated = events + data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    shuffled = data.draw(st.permutations(duplicated))
    assert fold(list(shuffled), requested_topic=REQUESTED) == fold(events, requested_topic=REQUESTED)


@settings(max_examples=100, deadline=None)
@given(events=lives)
def test_a_late_or_duplicate_event_never_moves_a_job_backwards(events: list[Event]) -> None:
    state = evolve(None, events[0], requested_topic=REQUESTED)
    for i, event in enumerate(events):
        previous, state = state, evolve(state, event, requested_topic=REQUESTED)
        assert previous.attempt <= state.attempt
        assert not previous.status.terminal or state.status is previous.status
        for late in events[: i + 1]:  # anything seen before, delivered again, changes nothing
            assert evolve(state, late, requested_topic=REQUESTED) == state


def test_a_late_progress_event_does_not_reopen_a_finished_job() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=1, steps=1, ending=TerminalStatus.SUCCEEDED, webhook=False)
    state = fold([life[0], life[-1], *life[1:-1]], requested_topic=REQUESTED)
    assert state is not None
    assert state.status is JobStatus.SUCCEEDED
    assert state.outcome is not None and state.outcome.result == '{"ok": 1}'


def test_progress_before_its_request_keeps_the_request_fields_and_the_status() -> None:
    job = str(uuid.uuid4())
    requested, started = _life(job, attempts=1, steps=0, ending=None, webhook=False)
    state = fold([started, requested], requested_topic=REQUESTED)
    assert state is not None
    assert state.status is JobStatus.RUNNING
    assert state.request is not None and state.request.max_attempts == 1
    assert state.created_at == T0


def test_a_dead_lettered_request_fails_the_job_with_the_reason() -> None:
    job = str(uuid.uuid4())
    letter = JobDeadLettered(
        stage="projector",
        reason=DeadLetterReason.UNDECODABLE,
        source_topic=REQUESTED,
        source_partition=0,
        source_offset=3,
        job_id=job,
        error_message="bad avro",
    )
    state = evolve(None, letter, requested_topic=REQUESTED)
    assert state.status is JobStatus.FAILED
    assert state.outcome is not None and state.outcome.error == JobError("UNDECODABLE", "bad avro")


def test_a_completed_event_outranks_a_dead_letter_in_either_order() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=1, steps=0, ending=TerminalStatus.SUCCEEDED, webhook=False)
    letter = JobDeadLettered(
        stage="processor",
        reason=DeadLetterReason.RETRIES_EXHAUSTED,
        source_topic=REQUESTED,
        source_partition=0,
        source_offset=3,
        job_id=job,
    )
    for events in ([*life, letter], [letter, *life]):
        state = fold(events, requested_topic=REQUESTED)
        assert state is not None and state.status is JobStatus.SUCCEEDED


def test_an_undeliverable_webhook_is_noted_without_changing_the_outcome() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=1, steps=0, ending=TerminalStatus.SUCCEEDED, webhook=True)
    state = fold(life, requested_topic=REQUESTED)
    assert state is not None and state.status is JobStatus.SUCCEEDED
    assert [n.reason for n in state.notes] == [DeadLetterReason.WEBHOOK_UNDELIVERABLE]


def test_a_running_job_without_heartbeats_is_stalled_and_a_heartbeat_revives_it() -> None:
    job = str(uuid.uuid4())
    requested, started = _life(job, attempts=1, steps=0, ending=None, webhook=False)
    state = fold([requested, started], requested_topic=REQUESTED)
    assert state is not None
    after = timedelta(seconds=30)
    assert status_at(state, started.occurred_at + timedelta(seconds=29), after) is JobStatus.RUNNING
    assert status_at(state, started.occurred_at + timedelta(seconds=31), after) is JobStatus.STALLED
    beat = JobProgress(
        job_id=job,
        job_type="t",
        sequence=sequence(1, 2),
        kind=ProgressKind.HEARTBEAT,
        occurred_at=started.occurred_at + timedelta(seconds=30),
    )
    revived = evolve(state, beat, requested_topic=REQUESTED)
    assert status_at(revived, started.occurred_at + timedelta(seconds=31), after) is JobStatus.RUNNING


def test_a_retry_starts_progress_afresh() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=2, steps=1, ending=None, webhook=False)
    first_attempt = [e for e in life if e.sequence < sequence(2, 1)]
    state = fold(first_attempt, requested_topic=REQUESTED)
    assert state is not None and state.status is JobStatus.RETRYING
    restarted = evolve(state, life[len(first_attempt)], requested_topic=REQUESTED)
    assert restarted.status is JobStatus.RUNNING and restarted.attempt == 2
    assert restarted.current(restarted.percent) is None


def test_a_cancel_request_is_kept_the_earliest_first_and_shown_too_late_when_another_outcome_won() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=1, steps=1, ending=TerminalStatus.SUCCEEDED, webhook=False, cancels=2)
    state = fold(list(reversed(life)), requested_topic=REQUESTED)
    assert state is not None and state.cancel is not None
    first = next(e for e in life if isinstance(e, JobCancelRequested))
    assert (state.cancel.at, state.cancel.reason) == (first.occurred_at, "ask 0")
    assert state.status is JobStatus.SUCCEEDED and state.cancel_too_late


def test_a_cancel_request_alone_does_not_change_the_status_until_the_outcome_says_cancelled() -> None:
    job = str(uuid.uuid4())
    requested, started = _life(job, attempts=1, steps=0, ending=None, webhook=False)
    cancel = JobCancelRequested(job_id=job, occurred_at=T0 + timedelta(seconds=5))
    state = fold([requested, started, cancel], requested_topic=REQUESTED)
    assert state is not None and state.status is JobStatus.RUNNING and not state.cancel_too_late
    outcome = JobCompleted(
        job_id=job, job_type="t", sequence=terminal_sequence(1), status=TerminalStatus.CANCELLED, attempt=1
    )
    state = evolve(state, outcome, requested_topic=REQUESTED)
    assert state.status is JobStatus.CANCELLED and not state.cancel_too_late


def test_started_at_is_the_first_attempts_start_in_any_order() -> None:
    job = str(uuid.uuid4())
    life = _life(job, attempts=2, steps=1, ending=TerminalStatus.FAILED, webhook=False)
    first_start = next(e for e in life if isinstance(e, JobProgress) and e.kind is ProgressKind.STARTED)
    state = fold(list(reversed(life)), requested_topic=REQUESTED)
    assert state is not None and state.started_at == first_start.occurred_at
    assert state.completed_at == life[-1].occurred_at


def test_started_at_comes_from_the_outcome_when_the_start_was_folded_into_it() -> None:
    job = str(uuid.uuid4())
    requested = JobRequested(job_id=job, job_type="t", payload="{}", occurred_at=T0)
    quick = JobCompleted(
        job_id=job,
        job_type="t",
        sequence=terminal_sequence(1),
        status=TerminalStatus.SUCCEEDED,
        started_at=T0 + timedelta(milliseconds=3),
        occurred_at=T0 + timedelta(milliseconds=5),
    )
    state = fold([quick, requested], requested_topic=REQUESTED)
    assert state is not None and state.started_at == T0 + timedelta(milliseconds=3)
