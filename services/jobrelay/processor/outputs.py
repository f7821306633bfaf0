"""The events the processor writes about a job, built from its request (pure, no I/O).

Sequence numbers follow `jobrelay.jobs.sequence`: attempt k's progress events are numbered
sequence(k, 1), sequence(k, 2), … and its terminal event terminal_sequence(k).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from aiokafka import ConsumerRecord

from jobrelay.jobs.events import (
    DeadLetterReason,
    JobCompleted,
    JobDeadLettered,
    JobError,
    JobProgress,
    JobRequested,
    ProgressKind,
    TerminalStatus,
)
from jobrelay.jobs.sequence import REQUESTED, sequence, terminal_sequence
from jobrelay.messaging.loop import dead_letter_for

__all__ = ["STAGE", "completed", "dead_letter", "progress"]

STAGE = "processor"
_MAX_TEXT = 4000  # error and progress messages are for people; keep records small


def progress(
    request: JobRequested,
    attempt: int,
    n: int,
    kind: ProgressKind,
    *,
    worker: str,
    percent: float | None = None,
    message: str | None = None,
    retry_at: datetime | None = None,
) -> JobProgress:
    """The n-th progress event (from 1) of `attempt`."""
    return JobProgress(
        job_id=request.job_id,
        job_type=request.job_type,
        sequence=sequence(attempt, n),
        kind=kind,
        attempt=attempt,
        percent=percent,
        message=message[:_MAX_TEXT] if message is not None else None,
        retry_at=retry_at,
        worker=worker,
    )


def completed(
    request: JobRequested,
    attempt: int,
    status: TerminalStatus,
    *,
    result: str | None = None,
    error: JobError | None = None,
    started_at: datetime | None = None,
) -> JobCompleted:
    """The one terminal event of the job, ending `attempt`; copies what the notifier needs.

    `attempt` 0: the job ended before any attempt started (cancelled or expired while queued); it
    is numbered like attempt 1's terminal event, which still outranks everything else of the job.
    """
    if error is not None and len(error.message) > _MAX_TEXT:
        error = JobError(error.code, error.message[:_MAX_TEXT], error.retryable)
    return JobCompleted(
        job_id=request.job_id,
        job_type=request.job_type,
        sequence=terminal_sequence(max(1, attempt)),
        status=status,
        attempt=attempt,
        result=result,
        error=error,
        started_at=started_at,
        callback_url=request.callback_url,
        request_hash=request.request_hash,
        tenant=request.tenant,
        requested_at=request.occurred_at,
        expires_at=request.expires_at,
    )


def dead_letter(
    record: ConsumerRecord[bytes, bytes],
    reason: DeadLetterReason,
    message: str,
    *,
    request: JobRequested | None = None,
    attempt: int | None = None,
) -> JobDeadLettered:
    """A dead letter for `record`; numbered like the terminal event of `attempt` when given.

    Without an attempt (poison, idempotency conflicts) it keeps sequence 0, which a status view
    that already applied the job's request ignores: a conflicting duplicate never touches the job.
    """
    letter = dead_letter_for(record, STAGE, reason, message, attempts=attempt or 0)
    return replace(
        letter,
        job_id=request.job_id if request is not None else letter.job_id,
        sequence=terminal_sequence(attempt) if attempt else REQUESTED,
        job_type=request.job_type if request is not None else None,
    )
