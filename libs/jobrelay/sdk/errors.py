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
    "ServiceUnavailable",
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


class ServiceUnavailable(ProblemError):
    """503: nothing was persisted; retrying (with the same Idempotency-Key) is safe."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


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
    """The job did not finish in time; `last` is the last status seen (or None)."""

    def __init__(self, job_id: str, last: Any) -> None:
        self.job_id, self.last = job_id, last
        super().__init__(f"job {job_id} not finished in time (last status: {getattr(last, 'status', None)})")
