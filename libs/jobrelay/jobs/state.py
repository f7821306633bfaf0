"""A job's state, folded from its events: `evolve(state, event)`, pure, with no I/O.

A job's events arrive on four topics, so their relative order is not guaranteed: a JobProgress
can be applied before its JobRequested, a heartbeat after the terminal event. The state is
therefore a set of registers, each keeping the value with the highest ordering key (sequence
number, then event id), or a max/min of timestamps. Each register is a join (commutative,
associative, idempotent), so any reordering or duplication of a job's events folds to the same
state as the ordered log, and nothing ever moves a job backwards.

A cancel request is one more register (the earliest one wins); it does not change the status by
itself: the processor answers it with the job's one outcome (CANCELLED, or whatever beat it), and
a cancel that arrives after another outcome stays visible as "too late".

STALLED is not stored: `status_at(state, now, stall_after)` derives it when a RUNNING job has not
been heard of (started, progress, heartbeat) for longer than `stall_after`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

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
from jobrelay.jobs.sequence import attempt_of

__all__ = [
    "DEFAULT_TENANT",
    "TERMINAL",
    "CancelRequest",
    "JobState",
    "JobStatus",
    "Note",
    "Outcome",
    "Request",
    "Step",
    "Valued",
    "evolve",
    "fold",
    "status_at",
]


class JobStatus(enum.StrEnum):
    """Where a job is in its life cycle (STALLED is derived, never stored)."""

    ACCEPTED = "ACCEPTED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    STALLED = "STALLED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """Whether no event can change this status any more."""
        return self in TERMINAL


DEFAULT_TENANT = "anonymous"
"""The tenant of a job whose request named none (published straight to Kafka, or before tenants)."""

TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})

# The transition table: which status a progress event puts a (not yet terminal) job in.
_PROGRESS_STATUS: dict[ProgressKind, JobStatus] = {
    ProgressKind.STARTED: JobStatus.RUNNING,
    ProgressKind.PROGRESS: JobStatus.RUNNING,
    ProgressKind.HEARTBEAT: JobStatus.RUNNING,
    ProgressKind.RETRY_SCHEDULED: JobStatus.RETRYING,
}
_TERMINAL_STATUS: dict[TerminalStatus, JobStatus] = {s: JobStatus(s.value) for s in TerminalStatus}


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What the JobRequested said (kept whenever it arrives, before or after other events)."""

    job_type: str
    created_at: datetime
    max_attempts: int
    timeout_s: float | None = None
    expires_at: datetime | None = None
    callback_url: str | None = None
    client_id: str | None = None
    payload: str | None = None  # the input as JSON text, kept so the job can be re-run
    tenant: str | None = None
    retry_of: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequest:
    """The earliest request to cancel the job."""

    at: datetime
    event_id: str
    reason: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """The non-terminal status of the highest-sequence progress event."""

    sequence: int
    event_id: str
    status: JobStatus
    attempt: int
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The terminal outcome; a JobCompleted outranks a dead-lettered request."""

    completed: bool  # False: the request itself was dead-lettered
    sequence: int
    event_id: str
    status: JobStatus
    attempt: int
    at: datetime
    result: str | None = None
    error: JobError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Valued:
    """A value reported by a progress event (percent or message), with the event's ordering key."""

    sequence: int
    event_id: str
    value: float | str


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """A dead letter about the job that does not change its outcome (e.g. an undeliverable webhook)."""

    event_id: str
    stage: str
    reason: DeadLetterReason
    source_topic: str
    at: datetime
    error_message: str = ""
    attempts: int = 0
    last_status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobState:
    """Everything the view knows about one job."""

    job_id: str
    typed: Valued | None = None  # the job type, from the lowest-sequence event naming it
    request: Request | None = None
    step: Step | None = None
    outcome: Outcome | None = None
    percent: Valued | None = None
    message: Valued | None = None
    notes: tuple[Note, ...] = ()
    first_at: datetime | None = None
    last_at: datetime | None = None
    activity_at: datetime | None = None  # the last sign of life of a running attempt
    started_at: datetime | None = None  # when the first attempt started
    cancel: CancelRequest | None = None

    @property
    def status(self) -> JobStatus:
        """The stored status: outcome, else latest step, else ACCEPTED."""
        if self.outcome is not None:
            return self.outcome.status
        return self.step.status if self.step is not None else JobStatus.ACCEPTED

    @property
    def job_type(self) -> str | None:
        """The job's type, when any event named it."""
        return str(self.typed.value) if self.typed is not None else None

    @property
    def attempt(self) -> int:
        """The attempt the job is in or ended with (0 while only accepted)."""
        if self.outcome is not None:
            return self.outcome.attempt
        return self.step.attempt if self.step is not None else 0

    @property
    def tenant(self) -> str:
        """The tenant the job belongs to; the default tenant's when its request named none or is unknown
        (published without one, or dead-lettered as undecodable: nobody can say whose it was)."""
        return (self.request.tenant if self.request is not None else None) or DEFAULT_TENANT

    @property
    def cancel_too_late(self) -> bool:
        """A cancel was requested but another outcome beat it (e.g. the job had just succeeded)."""
        return self.cancel is not None and self.outcome is not None and self.outcome.status is not JobStatus.CANCELLED

    @property
    def completed_at(self) -> datetime | None:
        """When the job ended (None while it has not)."""
        return self.outcome.at if self.outcome is not None else None

    @property
    def created_at(self) -> datetime | None:
        """When the job was requested (or first heard of, until its request is applied)."""
        return self.request.created_at if self.request is not None else self.first_at

    def current(self, valued: Valued | None) -> float | str | None:
        """A progress value if it belongs to the current attempt (a retry starts afresh)."""
        if valued is None or attempt_of(valued.sequence) != self.attempt:
            return None
        return valued.value


def status_at(state: JobState, now: datetime, stall_after: timedelta) -> JobStatus:
    """The status a reader sees at `now`: RUNNING without a sign of life for `stall_after` is STALLED."""
    status = state.status
    if status is JobStatus.RUNNING and state.activity_at is not None and now - state.activity_at > stall_after:
        return JobStatus.STALLED
    return status


def fold(events: list[Event], *, requested_topic: str) -> JobState | None:
    """The state after applying `events` in order (None when there are none)."""
    state: JobState | None = None
    for event in events:
        state = evolve(state, event, requested_topic=requested_topic)
    return state


def evolve(state: JobState | None, event: Event, *, requested_topic: str) -> JobState:
    """The state after `event`; `requested_topic` tells request dead letters from the others."""
    if event.job_id is None:
        raise ValueError("an event without a job id cannot be applied to a job")
    state = state if state is not None else JobState(job_id=event.job_id)
    if state.job_id != event.job_id:
        raise ValueError(f"event of job {event.job_id} applied to job {state.job_id}")
    # The timestamps and the event's own registers are disjoint fields: one new state per event.
    changes = _timestamps(state, event)
    match event:
        case JobRequested():
            changes.update(_requested(state, event))
        case JobProgress():
            changes.update(_progress(state, event))
        case JobCompleted():
            changes.update(_completed(state, event))
        case JobDeadLettered():
            changes.update(_dead_lettered(state, event, requested_topic))
        case JobCancelRequested():
            changes.update(_cancel_requested(state, event))
    return _with(state, changes)


Changes = dict[str, Any]
"""New values of some JobState fields."""
_REGISTERS = (
    "typed",
    "request",
    "step",
    "outcome",
    "percent",
    "message",
    "notes",
    "first_at",
    "last_at",
    "activity_at",
    "started_at",
    "cancel",
)
if tuple(f.name for f in fields(JobState)) != ("job_id", *_REGISTERS):  # _with names every field
    raise ImportError("JobState's fields changed: update _REGISTERS and _with")


def _with(state: JobState, changes: Changes) -> JobState:
    """`dataclasses.replace(state, **changes)` without its generic walk over the fields (the fold's hot spot)."""
    get = changes.get
    return JobState(
        job_id=state.job_id,
        typed=get("typed", state.typed),
        request=get("request", state.request),
        step=get("step", state.step),
        outcome=get("outcome", state.outcome),
        percent=get("percent", state.percent),
        message=get("message", state.message),
        notes=get("notes", state.notes),
        first_at=get("first_at", state.first_at),
        last_at=get("last_at", state.last_at),
        activity_at=get("activity_at", state.activity_at),
        started_at=get("started_at", state.started_at),
        cancel=get("cancel", state.cancel),
    )


_T = TypeVar("_T", Valued, Step, Outcome)


def _higher(current: _T | None, candidate: _T) -> _T:
    """The register value with the higher ordering key (a join: order and duplicates do not matter)."""
    if current is None or _key(candidate) > _key(current):
        return candidate
    return current


def _key(value: Valued | Step | Outcome) -> tuple[bool, int, str]:
    completed = value.completed if isinstance(value, Outcome) else False
    return (completed, value.sequence, value.event_id)


def _earlier_type(current: Valued | None, candidate: Valued) -> Valued:
    """The type named by the lowest-sequence event (the request, sequence 0, when it came)."""
    if current is None or (candidate.sequence, candidate.event_id) < (current.sequence, current.event_id):
        return candidate
    return current


def _timestamps(state: JobState, event: Event) -> Changes:
    at = event.occurred_at
    first = at if state.first_at is None else min(state.first_at, at)
    last = at if state.last_at is None else max(state.last_at, at)
    changes: Changes = {"first_at": first, "last_at": last}
    if event.job_type:
        typed = Valued(sequence=event.sequence, event_id=event.event_id, value=event.job_type)
        changes["typed"] = _earlier_type(state.typed, typed)
    return changes


def _requested(state: JobState, event: JobRequested) -> Changes:
    if state.request is not None:
        return {}  # duplicates carry the same request; keep the first one's values for a deterministic state
    request = Request(
        job_type=event.job_type,
        created_at=event.occurred_at,
        max_attempts=event.max_attempts,
        timeout_s=event.timeout_s,
        expires_at=event.expires_at,
        callback_url=event.callback_url,
        client_id=event.client_id,
        payload=event.payload,
        tenant=event.tenant,
        retry_of=event.retry_of,
    )
    return {"request": request}


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current


def _progress(state: JobState, event: JobProgress) -> Changes:
    step = Step(
        sequence=event.sequence,
        event_id=event.event_id,
        status=_PROGRESS_STATUS[event.kind],
        attempt=event.attempt,
        retry_at=event.retry_at,
    )
    activity = event.occurred_at if state.activity_at is None else max(state.activity_at, event.occurred_at)
    changes: Changes = {"step": _higher(state.step, step), "activity_at": activity}
    if event.kind is ProgressKind.STARTED:
        changes["started_at"] = _earliest(state.started_at, event.occurred_at)
    if event.percent is not None:
        percent = Valued(sequence=event.sequence, event_id=event.event_id, value=event.percent)
        changes["percent"] = _higher(state.percent, percent)
    if event.message is not None:
        message = Valued(sequence=event.sequence, event_id=event.event_id, value=event.message)
        changes["message"] = _higher(state.message, message)
    return changes


def _completed(state: JobState, event: JobCompleted) -> Changes:
    outcome = Outcome(
        completed=True,
        sequence=event.sequence,
        event_id=event.event_id,
        status=_TERMINAL_STATUS[event.status],
        attempt=event.attempt,
        at=event.occurred_at,
        result=event.result,
        error=event.error,
    )
    return {"outcome": _higher(state.outcome, outcome), "started_at": _earliest(state.started_at, event.started_at)}


def _cancel_requested(state: JobState, event: JobCancelRequested) -> Changes:
    candidate = CancelRequest(
        at=event.occurred_at, event_id=event.event_id, reason=event.reason, requested_by=event.requested_by
    )
    current = state.cancel
    if current is None or (candidate.at, candidate.event_id) < (current.at, current.event_id):
        return {"cancel": candidate}
    return {}


def _dead_lettered(state: JobState, event: JobDeadLettered, requested_topic: str) -> Changes:
    if event.source_topic == requested_topic:
        # The request itself could not be handled: the job failed, with the reason as its error.
        outcome = Outcome(
            completed=False,
            sequence=event.sequence,
            event_id=event.event_id,
            status=JobStatus.FAILED,
            attempt=max(event.attempts, 0),
            at=event.occurred_at,
            error=JobError(code=event.reason.value, message=event.error_message or event.reason.value),
        )
        return {"outcome": _higher(state.outcome, outcome)}
    note = Note(
        event_id=event.event_id,
        stage=event.stage,
        reason=event.reason,
        source_topic=event.source_topic,
        at=event.occurred_at,
        error_message=event.error_message,
        attempts=event.attempts,
        last_status=event.last_status,
    )
    if any(n.event_id == note.event_id for n in state.notes):
        return {}
    return {"notes": tuple(sorted((*state.notes, note), key=lambda n: (n.at, n.event_id)))}
