"""How a job looks over HTTP: the JSON body, its ETag, result values and list cursors."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from jobrelay.jobs.events import DeadLetterReason
from jobrelay.jobs.state import JobState, JobStatus, status_at
from jobrelay.projector.store.base import Cursor
from jobrelay.projector.store.rows import JobRow, iso, parse_iso

__all__ = ["decode_cursor", "encode_cursor", "etag", "links", "render", "result_value"]


def links(base: str, job_id: str) -> dict[str, str]:
    """Where to find the job, its result and its event stream."""
    self_url = f"{base}/v1/jobs/{job_id}"
    return {"self": self_url, "result": f"{self_url}/result", "events": f"{self_url}/events"}


def result_value(text: str) -> Any:
    """A job's result: the JSON it holds, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def render(row: JobRow, *, now: datetime, stall_after: timedelta, base: str) -> dict[str, Any]:
    """The job's status document, as `GET /v1/jobs/{id}` answers it."""
    state = row.state
    status = status_at(state, now, stall_after)
    created, updated = state.created_at, state.last_at
    doc: dict[str, Any] = {
        "id": state.job_id,
        "type": state.job_type,
        "status": status.value.lower(),
        "progress": 100.0 if status is JobStatus.SUCCEEDED else state.current(state.percent),
        "message": state.current(state.message),
        "attempts": state.attempt,
        "created_at": iso(created) if created is not None else None,
        "updated_at": iso(updated) if updated is not None else None,
    }
    doc.update(_details(state, status))
    doc["links"] = links(base, state.job_id)
    return doc


def _details(state: JobState, status: JobStatus) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if state.request is not None:
        extra["max_attempts"] = state.request.max_attempts
        if state.request.expires_at is not None:
            extra["expires_at"] = iso(state.request.expires_at)
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
    """A strong validator of the representation (it changes whenever any field does, STALLED included)."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:32]}"'


def encode_cursor(cursor: Cursor) -> str:
    """An opaque page token."""
    raw = json.dumps([iso(cursor.created_at), cursor.job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor `encode_cursor` made; ValueError if the token is not one."""
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return Cursor(parse_iso(created), str(job_id))
    except (ValueError, TypeError) as exc:
        raise ValueError("not a cursor this API issued") from exc
