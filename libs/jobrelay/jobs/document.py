"""A job's status document: the JSON body of `GET /v1/jobs/{id}`, drawn from its folded state.

Pure (no I/O): the status projector draws it from its view, the intake from the request it
published and the outcome it read on job-completed (`Prefer: wait` on `POST /v1/jobs`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jobrelay.jobs.events import DeadLetterReason
from jobrelay.jobs.state import JobState, JobStatus, status_at

__all__ = ["iso", "links", "render", "result_value", "retryable"]


def iso(moment: datetime) -> str:
    """A UTC timestamp whose text order is its time order (for indexes and cursors)."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    if utc.year < 1000:  # isoformat pads the year to 4 digits, strftime's %Y does not: keep strftime's text
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at a fraction of its cost.
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


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
    state: JobState,
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
