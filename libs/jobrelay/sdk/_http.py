"""What the sync and async clients share: building requests and deciding how long to wait."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from jobrelay.sdk.errors import TransientError
from jobrelay.sdk.retrying import retryable as is_transient
from jobrelay.sdk.status import Accepted, JobView, long_poll_applied

__all__ = ["ClientConfig", "JobRef", "backoff", "pause_after", "retryable"]

JobRef = str | Accepted | JobView  # a job id, the 202 that named it, or a status read earlier


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the two halves of the API live and how the client identifies itself."""

    base_url: str = "http://127.0.0.1:8000"
    status_base_url: str = "http://127.0.0.1:8001"
    client_id: str | None = None
    client_id_header: str = "X-Client-Id"
    api_key: str | None = field(default=None, repr=False)  # sent as `Authorization: Bearer …`, never shown
    max_retries: int = 3
    max_wait: int = 30  # the longest `Prefer: wait=N` the client asks for

    def submit_request(
        self,
        job_type: str,
        payload: Any,
        idempotency_key: str | None,
        options: dict[str, Any],
        wait: float | None = None,
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        """URL, JSON body and headers of a submission (a fresh Idempotency-Key when none given).

        `wait`: ask the intake to answer with the final status if the job ends within that many
        seconds (`Prefer: wait=N`, N rounded up to whole seconds).
        """
        body: dict[str, Any] = {"type": job_type, "payload": payload}
        for name, value in options.items():
            if value is not None:
                body[name] = value.isoformat() if isinstance(value, datetime) else value
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **self._identity()}
        if wait is not None and wait > 0:
            headers["Prefer"] = f"wait={math.ceil(wait)}"
        return f"{self.base_url.rstrip('/')}/v1/jobs", body, headers

    def _identity(self) -> dict[str, str]:
        headers = {self.client_id_header: self.client_id} if self.client_id else {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def headers(self) -> dict[str, str]:
        """Headers of a request about an existing job."""
        return {"Accept": "application/json", **self._identity()}

    def link(self, job: JobRef, name: str, suffix: str = "") -> str:
        """A life-cycle link (`cancel`, `retry`) the service gave, else built from the status URL."""
        links = job.links if isinstance(job, (Accepted, JobView)) else {}
        return links.get(name) or f"{self.status_url(job)}{suffix}"

    def status_url(self, job: JobRef) -> str:
        """The job's status URL: the one the 202 gave, else built from the status base URL."""
        if isinstance(job, Accepted) and job.links.get("status"):
            return job.links["status"]
        job_id = job if isinstance(job, str) else job.id
        return f"{self.status_base_url.rstrip('/')}/v1/jobs/{job_id}"

    def wait_headers(self, remaining: float, etag: str | None) -> dict[str, str]:
        """`Prefer: wait=N` for what is left of the deadline, and the ETag we already have."""
        headers = {"Accept": "application/json", **self._identity()}
        seconds = int(min(self.max_wait, remaining))
        if seconds >= 1:
            headers["Prefer"] = f"wait={seconds}"
        if etag:
            headers["If-None-Match"] = etag
        return headers


def pause_after(response: httpx.Response, view: JobView, remaining: float, poll_interval: float) -> float:
    """How long to sleep before asking again: nothing after a long poll, else Retry-After."""
    if long_poll_applied(response):
        return 0.0
    suggested = view.retry_after if view.retry_after is not None else poll_interval
    return max(0.05, min(suggested, remaining))


def retryable(exc: Exception) -> bool:
    """Whether a failed request may be retried: 429/502/503/504, or it never got an answer (see `retrying`)."""
    return is_transient(exc)


def backoff(exc: Exception, attempt: int) -> float:
    """Seconds before retry `attempt`: the server's Retry-After, else exponential (capped)."""
    if isinstance(exc, TransientError) and exc.retry_after is not None:
        return min(exc.retry_after, 30.0)
    return min(0.25 * 2.0**attempt, 10.0)
