"""The job request, validated once for the intake and the SDK's `JobPublisher` alike.

`JobSubmission` is the body of `POST /v1/jobs`. The limits an operator sets (payload size,
allowed job types, bounds) travel in the validation context as `RequestLimits`, so the intake
and the publisher apply exactly the same rules: `JobSubmission.parse(body, limits)`.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from jobrelay.security.urls import UnsafeURLError, UrlPolicy, check_url_syntax

__all__ = ["DEFAULT_MAX_ATTEMPTS", "JOB_TYPE_PATTERN", "JobSubmission", "RequestLimits", "canonical_json"]

# A dotted name: segments of letters, digits, `_` and `-`, each starting with a letter.
JOB_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)*$"
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What an operator allows: sizes, job types and bounds (the defaults suit most deployments)."""

    max_payload_bytes: int = 256 * 1024
    allowed_types: tuple[str, ...] = ()  # glob patterns, e.g. "report.*"; empty allows every type
    max_timeout_s: float = 24 * 3600.0
    max_attempts: int = 20
    max_expires_in: timedelta = timedelta(days=30)
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)

    def allows_type(self, job_type: str) -> bool:
        """Whether `job_type` matches the allow-list (always, when the list is empty)."""
        return not self.allowed_types or any(fnmatch.fnmatchcase(job_type, p) for p in self.allowed_types)


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: one text per value, so hashes and sizes are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _limits(info: ValidationInfo) -> RequestLimits:
    context = info.context or {}
    limits = context.get("limits")
    return limits if isinstance(limits, RequestLimits) else RequestLimits()


def _error(kind: str, message: str, **values: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, values)


class JobSubmission(BaseModel):
    """A request for a job: what to run, with what input, and how to report back."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    type: str = Field(
        max_length=128,
        pattern=JOB_TYPE_PATTERN,
        examples=["report.generate"],
        description="Dotted job type; selects the handler.",
    )
    payload: JsonValue = Field(description="The job's input, any JSON value (required; may be null).")
    callback_url: str | None = Field(default=None, description="https URL that receives the outcome as a webhook.")
    # Strict: a boolean, a number in a string or 1e1 for an integer is refused, never coerced.
    timeout_s: float | None = Field(default=None, gt=0, strict=True, description="Per-attempt time limit in seconds.")
    expires_at: AwareDatetime | None = Field(default=None, description="Do not start the job after this instant.")
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, strict=True, description="Attempts before the job fails."
    )

    @classmethod
    def parse(cls, body: bytes | str | dict[str, Any], limits: RequestLimits | None = None) -> Self:
        """Validate a JSON body (text or already decoded) against `limits`; raises ValidationError."""
        context = {"limits": limits or RequestLimits()}
        if isinstance(body, dict):
            return cls.model_validate(body, context=context)
        return cls.model_validate_json(body, context=context)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        if not _limits(info).allows_type(value):
            raise _error("job_type_not_allowed", "job type {job_type!r} is not accepted here", job_type=value)
        return value

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: JsonValue, info: ValidationInfo) -> JsonValue:
        try:
            size = len(canonical_json(value).encode())
        except ValueError as exc:  # NaN or Infinity: not JSON
            raise _error("json_value", "payload is not valid JSON: {reason}", reason=str(exc)) from exc
        limit = _limits(info).max_payload_bytes
        if size > limit:
            raise _error(
                "payload_too_large", "payload is {size} bytes, over the limit of {limit}", size=size, limit=limit
            )
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_syntax(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                check_url_syntax(value, _limits(info).url_policy)
            except UnsafeURLError as exc:
                raise _error("unsafe_url", "{reason}", reason=str(exc)) from exc
        return value

    @field_validator("timeout_s")
    @classmethod
    def _timeout_bound(cls, value: float | None, info: ValidationInfo) -> float | None:
        limit = _limits(info).max_timeout_s
        if value is not None and value > limit:
            raise _error("too_large", "timeout_s must be at most {limit} seconds", limit=limit)
        return value

    @field_validator("max_attempts")
    @classmethod
    def _attempts_bound(cls, value: int, info: ValidationInfo) -> int:
        limit = _limits(info).max_attempts
        if value > limit:
            raise _error("too_large", "max_attempts must be at most {limit}", limit=limit)
        return value

    @field_validator("expires_at")
    @classmethod
    def _expiry_window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        now, horizon = datetime.now(UTC), _limits(info).max_expires_in
        if value <= now:
            raise _error("in_the_past", "expires_at must be in the future")
        if value > now + horizon:
            raise _error("too_far", "expires_at must be within {days} days", days=horizon.total_seconds() / 86400)
        # The schemas keep milliseconds: round now, so the hash matches what is on the topic.
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)

    def payload_json(self) -> str:
        """The payload as the canonical JSON text that goes on the topic."""
        return canonical_json(self.payload)
