"""Full validation of a job request, the network part included (the callback URL's host)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobrelay.sdk.errors import FieldError, InvalidJobRequest
from jobrelay.sdk.request import JobSubmission, RequestLimits
from jobrelay.security.urls import UnsafeURLError, check_url

__all__ = ["validate_submission"]


async def validate_submission(
    body: bytes | str | dict[str, Any] | JobSubmission, limits: RequestLimits, *, prefix: str = "body"
) -> JobSubmission:
    """The validated submission, or InvalidJobRequest naming every bad field.

    The callback URL's host is resolved: a name that resolves to a loopback, private,
    link-local or metadata address is refused unless the policy allow-lists it.
    """
    try:
        raw = body.model_dump() if isinstance(body, JobSubmission) else body
        submission = JobSubmission.parse(raw, limits)
    except ValidationError as exc:
        raise InvalidJobRequest.from_validation(exc, prefix) from exc
    if submission.callback_url is not None:
        try:
            await check_url(submission.callback_url, limits.url_policy)
        except UnsafeURLError as exc:
            raise InvalidJobRequest([FieldError(f"{prefix}.callback_url", str(exc), "unsafe_url")]) from exc
    return submission
