"""How a job looks over HTTP: the JSON body, its ETag, result values and list cursors."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from jobrelay.jobs.events import DeadLetterReason
from jobrelay.jobs.state import JobState, JobStatus, status_at
from jobrelay.projector.store.base import Cursor
from jobrelay.projector.store.rows import JobRow, iso, parse_iso

__all__ = [
    "RETRY_NAMESPACE",
    "decode_cursor",
    "encode_cursor",
    "etag",
    "links",
    "render",
    "result_value",
    "retry_id",
    "retryable",
]

RETRY_NAMESPACE = uuid.UUID("3d0c5e2a-8f61-5b7a-9c24-6e1f0b8a4d57")
_ADVISORY = ("estimated_completion",)  # changes with the clock, not with the job: outside the ETag


def retry_id(job_id: str) -> str:
    """The id of the job that re-runs `job_id` (one per job: `POST …/retry` is idempotent)."""
    return str(uuid.uuid5(RETRY_NAMESPACE, job_id))


def retryable(state: JobState, status: JobStatus) -> bool:
    """Whether the job can be re-run: it ended without success and its request is known."""
    return (
        status.terminal
        and status is not JobStatus.SUCCEEDED
        and state.request is not None
        and (state.request.payload is not None)
    )


def links(base: str, job_id: str) -> dict[str, str]:
    """Where to find the job, its result and its event stream (`render` adds the life-cycle links)."""
    self_url = f"{base}/v1/jobs/{job_id}"
    return {"self": self_url, "result": f"{self_url}/result", "events": f"{self_url}/events"}


def result_value(text: str) -> Any:
    """A job's result: the JSON it holds, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def render(
    row: JobRow,
    *,
    now: datetime,
    stall_after: timedelta,
    base: str,
    retention: timedelta | None = None,
    estimate: datetime | None = None,
    retried_as: str | None = None,
) -> dict[str, Any]:
    """The job's status document, as `GET /v1/jobs/{id}` answers it.

    `retention`: how long the view keeps a finished job (gives `retain_until`); `estimate`: when
    a job not over yet will likely end; `retried_as`: the id of the job that re-ran this one.
    """
    state = row.state
    status = status_at(state, now, stall_after)
    request, completed = state.request, state.completed_at
    doc: dict[str, Any] = {
        "id": state.job_id,
        "type": state.job_type,
        "status": status.value.lower(),
        "progress": 100.0 if status is JobStatus.SUCCEEDED else state.current(state.percent),
        "message": state.current(state.message),
        "attempts": state.attempt,
        "created_at": _iso(state.created_at),
        "updated_at": _iso(state.last_at),
        "started_at": _iso(state.started_at),
        "completed_at": _iso(completed),
        "expires_at": _iso(request.expires_at if request is not None else None),
        "retain_until": _iso(completed + retention if completed is not None and retention is not None else None),
        "estimated_completion": _iso(estimate) if not status.terminal else None,
        "cancel_requested_at": _iso(state.cancel.at if state.cancel is not None else None),
        "retry_of": request.retry_of if request is not None else None,
    }
    if state.cancel_too_late:
        doc["cancel_too_late"] = True  # the job ended another way before the cancel reached it
    doc.update(_details(state, status))
    doc["links"] = _links(base, state, status, retried_as)
    return doc


def _iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _links(base: str, state: JobState, status: JobStatus, retried_as: str | None) -> dict[str, str]:
    found = links(base, state.job_id)
    if not status.terminal:
        found["cancel"] = found["self"]  # DELETE
    elif retryable(state, status):
        found["retry"] = f"{found['self']}/retry"  # POST
    if retried_as is not None:
        found["retried_as"] = f"{base}/v1/jobs/{retried_as}"
    if state.request is not None and state.request.retry_of is not None:
        found["retry_of"] = f"{base}/v1/jobs/{state.request.retry_of}"
    return found


def _details(state: JobState, status: JobStatus) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if state.request is not None:
        extra["max_attempts"] = state.request.max_attempts
    if status is JobStatus.RETRYING and state.step is not None and state.step.retry_at is not None:
        extra["retry_at"] = iso(state.step.retry_at)
    outcome = state.outcome
    if outcome is not None and status is JobStatus.SUCCEEDED and outcome.result is not None:
        extra["result"] = result_value(outcome.result)
    if outcome is not None and outcome.error is not None:
        error = outcome.error
        extra["error"] = {"code": error.code, "message": error.message, "retryable": error.retryable}
    for note in state.notes:
        if note.reason is DeadLetterReason.WEBHOOK_UNDELIVERABLE:
            extra["webhook"] = {
                "status": "undeliverable",
                "attempts": note.attempts,
                "last_status": note.last_status,
                "error": note.error_message,
                "at": iso(note.at),
            }
        else:
            incident = {
                "stage": note.stage,
                "reason": note.reason.value,
                "source_topic": note.source_topic,
                "error": note.error_message,
                "at": iso(note.at),
            }
            extra.setdefault("incidents", []).append(incident)
    return extra


def etag(body: dict[str, Any]) -> str:
    """A strong validator of the representation: it changes whenever the job does (STALLED included).

    The estimate is left out: it moves with the clock, and a poll must not look like a change.
    """
    stable = {k: v for k, v in body.items() if k not in _ADVISORY}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:32]}"'


def encode_cursor(cursor: Cursor) -> str:
    """An opaque page token."""
    raw = json.dumps([iso(cursor.created_at), cursor.job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor `encode_cursor` made; ValueError if the token is not one."""
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(created, str) or not isinstance(job_id, str):
            raise TypeError("a cursor holds two strings")
        moment = parse_iso(created)
        return Cursor(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC), job_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError("not a cursor this API issued") from exc
