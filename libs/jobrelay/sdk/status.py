"""What the HTTP API answers, as the SDK hands it to callers, and the HTTP details of polling.

Pure functions only (no I/O): the sync and async clients share them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from jobrelay.sdk.errors import JobConflict, JobNotFound, ProblemError, RateLimited, ServiceUnavailable, TransientError

__all__ = [
    "TERMINAL",
    "Accepted",
    "JobView",
    "accepted_from",
    "long_poll_applied",
    "raise_for_problem",
    "retry_after",
    "submitted_from",
    "view_from",
]

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})


class Accepted(BaseModel):
    """The intake's 202: the job id and where to follow it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    status: str
    links: dict[str, str]
    location: str | None = None
    retry_after: float | None = None
    replayed: bool = False


class JobView(BaseModel):
    """A job as the status view shows it (`GET /v1/jobs/{id}`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    type: str
    status: str
    progress: float | None = None
    message: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    retain_until: datetime | None = None
    estimated_completion: datetime | None = None
    cancel_requested_at: datetime | None = None
    retry_of: str | None = None
    result: Any = None
    error: Any = None
    links: dict[str, str] = {}
    retry_after: float | None = None
    etag: str | None = None
    sequence: int | None = None  # the event id it came with on a stream (resume with `after=`); None from a GET

    @property
    def terminal(self) -> bool:
        """Whether the job has its final outcome."""
        return self.status in TERMINAL


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds the `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def long_poll_applied(response: httpx.Response) -> bool:
    """Whether the server honoured `Prefer: wait=N` (it says so in `Preference-Applied`)."""
    return re.search(r"(^|[,;\s])wait\b", response.headers.get("preference-applied", "")) is not None


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the SDK's error for a non-2xx/304 answer, carrying the problem document."""
    if response.is_success or response.status_code == 304:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    if response.status_code == 503:
        raise ServiceUnavailable(503, problem, retry_after(response))
    if response.status_code == 429:
        raise RateLimited(429, problem, retry_after(response))
    if response.status_code in (502, 504):
        raise TransientError(response.status_code, problem, retry_after(response))
    if response.status_code == 404:
        raise JobNotFound(404, problem)
    if response.status_code == 409:
        raise JobConflict(409, problem)
    raise ProblemError(response.status_code, problem)


def accepted_from(response: httpx.Response) -> Accepted:
    """The Accepted value of a 202."""
    return Accepted.model_validate(
        response.json()
        | {
            "location": response.headers.get("location"),
            "retry_after": retry_after(response),
            "replayed": response.headers.get("idempotent-replayed") == "true",
        }
    )


def submitted_from(response: httpx.Response) -> Accepted | JobView:
    """What a submission answered: the job's final status (200, it ended within `Prefer: wait`), else its 202."""
    return view_from(response) if response.status_code == 200 else accepted_from(response)


def view_from(response: httpx.Response) -> JobView:
    """The JobView of a 200."""
    extra = {"retry_after": retry_after(response), "etag": response.headers.get("etag")}
    return JobView.model_validate(response.json() | extra)
