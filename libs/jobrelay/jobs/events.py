"""The events of a job's life, as plain immutable values (no I/O, no Avro).

A request, progress, the one outcome and dead letters, one per topic; and the cancel request, a
second event type on job-requested (it must follow the job's request on its partition).

Field names match the Avro schemas in `schemas/`; the messaging layer maps between the two.
Every event carries the job id and a per-job sequence number, so whoever folds them can ignore
late and duplicate ones.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "DeadLetterReason",
    "Event",
    "JobCompleted",
    "JobDeadLettered",
    "JobCancelRequested",
    "JobError",
    "JobProgress",
    "JobRequested",
    "ProgressKind",
    "RecordHeader",
    "TerminalStatus",
    "new_event_id",
    "utcnow",
]


def new_event_id() -> str:
    """A fresh event id (UUID4 text)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current instant, timezone-aware, at the millisecond the schemas keep."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ProgressKind(enum.StrEnum):
    """What a JobProgress event reports."""

    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    HEARTBEAT = "HEARTBEAT"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"


class TerminalStatus(enum.StrEnum):
    """The outcome a JobCompleted event records."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class DeadLetterReason(enum.StrEnum):
    """Why a record went to job-dlq."""

    UNDECODABLE = "UNDECODABLE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    WEBHOOK_UNDELIVERABLE = "WEBHOOK_UNDELIVERABLE"
    INVALID = "INVALID"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job did not succeed."""

    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """One Kafka record header, kept verbatim in a dead letter."""

    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequested:
    """A job was accepted and persisted."""

    job_id: str
    job_type: str
    payload: str
    event_id: str = field(default_factory=new_event_id)
    sequence: int = 0
    occurred_at: datetime = field(default_factory=utcnow)
    attempt: int = 1
    max_attempts: int = 3
    timeout_s: float | None = None
    expires_at: datetime | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    client_id: str | None = None
    request_hash: str = ""
    tenant: str | None = None
    retry_of: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgress:
    """Something happened to a running job: started, progress, heartbeat, retry scheduled."""

    job_id: str
    job_type: str
    sequence: int
    kind: ProgressKind
    event_id: str = field(default_factory=new_event_id)
    occurred_at: datetime = field(default_factory=utcnow)
    attempt: int = 1
    percent: float | None = None
    message: str | None = None
    retry_at: datetime | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCompleted:
    """The one terminal outcome of a job."""

    job_id: str
    job_type: str
    sequence: int
    status: TerminalStatus
    event_id: str = field(default_factory=new_event_id)
    occurred_at: datetime = field(default_factory=utcnow)
    attempt: int = 1
    result: str | None = None
    error: JobError | None = None
    started_at: datetime | None = None
    callback_url: str | None = None
    request_hash: str = ""
    tenant: str | None = None
    requested_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelRequested:
    """A client asked to stop a job (it may already be over: then nothing changes)."""

    job_id: str
    event_id: str = field(default_factory=new_event_id)
    sequence: int = 0
    occurred_at: datetime = field(default_factory=utcnow)
    reason: str | None = None
    requested_by: str | None = None
    tenant: str | None = None

    @property
    def job_type(self) -> None:
        """A cancel request names no job type (the fold reads `job_type` off every event)."""
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDeadLettered:
    """A record that could not be handled, with what is needed to replay it."""

    stage: str
    reason: DeadLetterReason
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str = field(default_factory=new_event_id)
    job_id: str | None = None
    sequence: int = 0
    occurred_at: datetime = field(default_factory=utcnow)
    job_type: str | None = None
    error_message: str = ""
    attempts: int = 0
    last_status: int | None = None
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: tuple[RecordHeader, ...] = ()


Event = JobRequested | JobProgress | JobCompleted | JobDeadLettered | JobCancelRequested
