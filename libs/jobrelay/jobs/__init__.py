"""The pure domain of jobrelay: events and job state, with no I/O."""

from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCompleted,
    JobDeadLettered,
    JobError,
    JobProgress,
    JobRequested,
    ProgressKind,
    RecordHeader,
    TerminalStatus,
    new_event_id,
    utcnow,
)

__all__ = [
    "DeadLetterReason",
    "Event",
    "JobCompleted",
    "JobDeadLettered",
    "JobError",
    "JobProgress",
    "JobRequested",
    "ProgressKind",
    "RecordHeader",
    "TerminalStatus",
    "new_event_id",
    "utcnow",
]
