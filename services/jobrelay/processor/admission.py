"""What to do with each record of job-requested before any handler runs (pure decisions).

Every kind of bad input has one clear outcome, and none is lost:

- a record finished before (above the committed offset, per the ledger) is skipped;
- another JobRequested for a job id already seen with the same request hash is ignored (a
  retried POST); with a different request hash it is dead-lettered (INVALID, "idempotency
  conflict") and the first job is left alone;
- a record that is not a JobRequested, or whose key is not its job id (co-partitioning would
  break), is dead-lettered (INVALID);
- an unknown job type gives JobCompleted(FAILED, "unknown_type") and a dead letter (UNKNOWN_TYPE);
- a payload that is not JSON gives JobCompleted(FAILED, "invalid_payload") and a dead letter
  (INVALID);
- anything else runs. Undecodable records never get here: the consumer loop hands them to the
  engine, which dead-letters them (UNDECODABLE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from jobrelay.jobs.events import DeadLetterReason, Event, JobError, JobRequested, TerminalStatus
from jobrelay.messaging.loop import Received
from jobrelay.processor.handlers import Handler, Registry
from jobrelay.processor.outputs import completed, dead_letter

__all__ = ["Admission", "Known", "admit"]

Verdict = Literal["run", "finished", "duplicate", "conflict", "invalid", "unknown_type"]


class Known(Protocol):
    """The jobs known so far: job id → request hash (a dict will do)."""

    def get(self, job_id: str, /) -> str | None:
        """The request hash of `job_id`, if known."""
        ...


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on one record, the events that settle it (if any), and what to run."""

    verdict: Verdict
    events: tuple[Event, ...] = ()
    handler: Handler | None = None
    payload: Any = None


def admit(received: Received, *, finished: bool, seen: Known, registry: Registry) -> Admission:
    """Decide what happens to `received`; `seen` maps known job ids to their request hash."""
    request = received.event
    if finished:
        return Admission("finished")
    if not isinstance(request, JobRequested):
        return _invalid(received, f"job-requested carries a {type(request).__name__}, not a JobRequested")
    if received.key != request.job_id.encode():
        return _invalid(received, "the record key is not the job id, so the job's events would not be co-partitioned")
    known = seen.get(request.job_id)
    if known is not None:
        if known == request.request_hash:
            return Admission("duplicate")
        return Admission(
            "conflict",
            (
                _letter(
                    received,
                    DeadLetterReason.INVALID,
                    "idempotency conflict: this job id is already used by a different request",
                ),
            ),
        )
    handler = registry.get(request.job_type)
    if handler is None:
        message = f"no handler is registered for job type {request.job_type!r}"
        return _failed(received, request, "unknown_type", DeadLetterReason.UNKNOWN_TYPE, message)
    try:
        payload = json.loads(request.payload)
    except ValueError as exc:
        message = f"the payload is not JSON: {exc}"
        return _failed(received, request, "invalid_payload", DeadLetterReason.INVALID, message)
    return Admission("run", handler=handler, payload=payload)


def _invalid(received: Received, message: str) -> Admission:
    return Admission("invalid", (_letter(received, DeadLetterReason.INVALID, message),))


def _failed(received: Received, request: JobRequested, code: str, reason: DeadLetterReason, message: str) -> Admission:
    attempt = max(1, request.attempt)
    outcome = completed(request, attempt, TerminalStatus.FAILED, error=JobError(code, message))
    letter = _letter(received, reason, message, request=request, attempt=attempt)
    verdict: Verdict = "unknown_type" if code == "unknown_type" else "invalid"
    return Admission(verdict, (outcome, letter))


def _letter(
    received: Received,
    reason: DeadLetterReason,
    message: str,
    *,
    request: JobRequested | None = None,
    attempt: int | None = None,
) -> Event:
    if received.record is None:
        raise ValueError("the raw record is needed to dead-letter it")
    return dead_letter(received.record, reason, message, request=request, attempt=attempt)
