"""How a job looks over HTTP: the JSON body (drawn by `jobrelay.jobs.document`), its ETag, list cursors."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from jobrelay.jobs.document import iso, links, result_value, retryable
from jobrelay.jobs.document import render as render_state
from jobrelay.projector.store.base import Cursor
from jobrelay.projector.store.rows import JobRow, parse_iso

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
    """The job's status document, as `GET /v1/jobs/{id}` answers it (`jobrelay.jobs.document.render`)."""
    return render_state(
        row.state,
        now=now,
        stall_after=stall_after,
        base=base,
        retention=retention,
        estimate=estimate,
        retried_as=retried_as,
    )


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
