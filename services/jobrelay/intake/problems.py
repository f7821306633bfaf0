"""The intake's problem documents (RFC 9457), each naming the field at fault."""

from __future__ import annotations

from jobrelay.http.problems import TYPE_BASE, Problem
from jobrelay.sdk.errors import InvalidJobRequest

__all__ = [
    "MAX_KEY_LENGTH",
    "check_header",
    "check_media_type",
    "conflict",
    "invalid",
    "overloaded",
    "too_large",
    "unavailable",
]

MAX_KEY_LENGTH = 255


def check_header(name: str, value: str | None) -> None:
    """A 400 unless `value` (when present) is 1 to 255 printable ASCII characters."""
    if value is None:
        return
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        field = f"header.{name}"
        raise Problem(
            400,
            f"Invalid {name} header",
            f"{name} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            type_=f"{TYPE_BASE}invalid-header",
            errors=[{"field": field, "detail": "1 to 255 printable ASCII characters"}],
        )


def check_media_type(content_type: str) -> None:
    """A 415 unless the body is declared as application/json (or another `+json` type)."""
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise Problem(
            415,
            "Unsupported media type",
            f"send the job as application/json, not {media or 'nothing'}",
            type_=f"{TYPE_BASE}unsupported-media-type",
            errors=[{"field": "header.Content-Type", "detail": "must be application/json"}],
        )


def too_large(limit: int) -> Problem:
    """413: the body is over `limit` bytes."""
    return Problem(
        413,
        "Request body too large",
        f"the body must be at most {limit} bytes",
        type_=f"{TYPE_BASE}body-too-large",
        errors=[{"field": "body", "detail": f"over {limit} bytes"}],
    )


def invalid(exc: InvalidJobRequest) -> Problem:
    """400, 413 or 422 naming every field the submission got wrong."""
    titles = {400: "Malformed JSON", 413: "Payload too large", 422: "Invalid job request"}
    kinds = {400: "malformed-json", 413: "payload-too-large", 422: "validation"}
    errors = [{"field": e.field, "detail": e.detail} for e in exc.errors]
    detail = "; ".join(f"{e.field}: {e.detail}" for e in exc.errors)
    return Problem(
        exc.status,
        titles.get(exc.status, "Invalid request"),
        detail,
        type_=f"{TYPE_BASE}{kinds.get(exc.status, 'validation')}",
        errors=errors,
    )


def conflict() -> Problem:
    """422: the Idempotency-Key was used for a different request."""
    detail = "this Idempotency-Key was already used for a different request; use a new key for a new job"
    return Problem(
        422,
        "Idempotency-Key reused",
        detail,
        type_=f"{TYPE_BASE}idempotency-conflict",
        errors=[{"field": "header.Idempotency-Key", "detail": detail}],
    )


def unavailable(reason: str, retry_after: int) -> Problem:
    """503 with Retry-After: nothing was accepted, and whether a retry is safe."""
    detail = (
        f"the job was not accepted ({reason}). Retrying with the same Idempotency-Key is safe: it never "
        "creates a second job. Without a key, a retry may create a second job, because a write that "
        "timed out can still land."
    )
    return Problem(
        503,
        "Kafka unavailable",
        detail,
        type_=f"{TYPE_BASE}broker-unavailable",
        headers={"Retry-After": str(retry_after)},
    )


def overloaded(backlog: int, threshold: int, retry_after: int) -> Problem:
    """503 with Retry-After: the processors are too far behind to take more work now; nothing was accepted."""
    return Problem(
        503,
        "Too much work waiting",
        f"the job was not accepted: {backlog} requests are waiting for a processor (the limit is {threshold}); "
        f"retry in {retry_after}s",
        type_=f"{TYPE_BASE}overloaded",
        headers={"Retry-After": str(retry_after)},
        backlog=backlog,
    )
