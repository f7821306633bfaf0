"""What the SDK raises, and how validation failures name their fields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

__all__ = [
    "FieldError",
    "InvalidJobRequest",
    "JobConflict",
    "JobNotFound",
    "JobRelayError",
    "ProblemError",
    "RateLimited",
    "ServiceUnavailable",
    "StreamLost",
    "TransientError",
    "WaitTimeout",
]


class JobRelayError(Exception):
    """Base of every error the SDK raises."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: where (`body.callback_url`), what kind, and why in words."""

    field: str
    detail: str
    kind: str = "invalid"


class InvalidJobRequest(JobRelayError, ValueError):
    """The request breaks the rules; nothing was submitted. `status` is the HTTP code it maps to."""

    def __init__(self, errors: Sequence[FieldError], status: int = 422) -> None:
        self.errors, self.status = tuple(errors), status
        super().__init__("invalid job request: " + "; ".join(f"{e.field}: {e.detail}" for e in self.errors))

    @classmethod
    def from_validation(cls, exc: ValidationError, prefix: str = "body") -> InvalidJobRequest:
        """Name every field pydantic rejected; malformed JSON is 400, an oversized payload 413."""
        errors = [FieldError(_field(prefix, e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]
        kinds = {e.kind for e in errors}
        status = 400 if "json_invalid" in kinds else 413 if "payload_too_large" in kinds else 422
        return cls(errors, status)


def _field(prefix: str, location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in (prefix, *location) if part != "")


class ProblemError(JobRelayError):
    """The service answered with an error (an RFC 9457 problem document when it could)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        self.fields = tuple(e.get("field", "") for e in problem.get("errors", []) if isinstance(e, dict))
        detail = problem.get("detail") or problem.get("title") or "error"
        super().__init__(f"HTTP {status}: {detail}")


class TransientError(ProblemError):
    """429, 502, 503 or 504: the service could not answer now; asking again (after `retry_after`) may work."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class ServiceUnavailable(TransientError):
    """503: nothing was persisted; retrying (with the same Idempotency-Key) is safe."""


class RateLimited(TransientError):
    """429: the caller is over a limit (requests, open streams); `retry_after` says when to come back."""


class JobNotFound(ProblemError):
    """404: the status view does not know this job."""


class JobConflict(ProblemError):
    """409: the job is not in a state for this (e.g. cancelling a job that is over); `job_status` says which."""

    @property
    def job_status(self) -> str | None:
        """The job's status, as the problem document names it."""
        value = self.problem.get("job_status")
        return value if isinstance(value, str) else None


class WaitTimeout(JobRelayError, TimeoutError):
    """The job did not finish in time; `last` is the last status seen (or None), `error` the last failed try."""

    def __init__(
        self, job_id: str, last: Any, error: BaseException | None = None, timeout: float | None = None
    ) -> None:
        self.job_id, self.last, self.error, self.timeout = job_id, last, error, timeout
        within = f" within {timeout:g}s" if timeout is not None else " in time"
        super().__init__(f"job {job_id} did not finish{within}; {_last_seen(last, error)}")


def _last_seen(last: Any, error: BaseException | None) -> str:
    status = getattr(last, "status", None)
    seen = "no status seen" if status is None else f"last status: {status}"
    progress, message = getattr(last, "progress", None), getattr(last, "message", None)
    if progress is not None:
        seen += f" {progress:.0f}%"
    if message:
        seen += f" ({message})"
    if error is not None:
        seen += f"; the last try failed: {describe(error)}"
    return seen


def describe(error: BaseException) -> str:
    """An error in a few words: its type and message (transport errors often have an empty message)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class StreamLost(JobRelayError, ConnectionError):
    """An event stream could not be resumed in time; resume later from `last_event_id` (`after=`)."""

    def __init__(self, url: str, last_event_id: int | None, error: BaseException, gave_up_after: float) -> None:
        self.url, self.last_event_id, self.error = url, last_event_id, error
        super().__init__(
            f"lost the event stream {url} and could not resume it within {gave_up_after:g}s "
            f"(last event id {last_event_id}); the last try failed: {describe(error)}"
        )
