"""The webhook message: its JSON body and its Standard Webhooks signature headers.

The message type says how the job ended: `job.completed` (succeeded or failed, as since the
first version), `job.cancelled` or `job.expired`; `data.status` always names the outcome. The
body carries the job's timestamps, `retain_until` among them: after it the status view answers
410, so a receiver that wants the result must fetch it before.

The body is built once, when the completion is recorded, and kept as bytes: every retry sends
the very same bytes under the very same `webhook-id`, only `webhook-timestamp` and the
signatures are fresh (receivers refuse timestamps older than a few minutes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

from jobrelay.jobs.events import JobCompleted, TerminalStatus

__all__ = ["EVENT_TYPE", "EVENT_TYPES", "signature_headers", "tenant_of", "webhook_body"]

EVENT_TYPE = "job.completed"
EVENT_TYPES: dict[TerminalStatus, str] = {
    TerminalStatus.SUCCEEDED: EVENT_TYPE,
    TerminalStatus.FAILED: EVENT_TYPE,
    TerminalStatus.CANCELLED: "job.cancelled",
    TerminalStatus.EXPIRED: "job.expired",
}


def _result(text: str) -> Any:
    """The job's result as JSON; text that is not JSON is passed on as a JSON string, not dropped."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _maybe(moment: datetime | None) -> str | None:
    return _iso(moment) if moment is not None else None


def webhook_body(event: JobCompleted, status_base_url: str, retention: timedelta | None = None) -> bytes:
    """The JSON body announcing `event`, with links to the job's status and result.

    `retention`: how long the status view keeps the job (gives `retain_until`; omitted without it).
    """
    status_url = f"{status_base_url.rstrip('/')}/v1/jobs/{event.job_id}"
    data: dict[str, Any] = {"id": event.job_id, "type": event.job_type, "status": event.status.value.lower()}
    if event.result is not None:
        data["result"] = _result(event.result)
    if event.error is not None:
        data["error"] = {"code": event.error.code, "message": event.error.message}
    data["attempts"] = event.attempt
    data["created_at"] = _maybe(event.requested_at)
    data["started_at"] = _maybe(event.started_at)
    data["completed_at"] = _iso(event.occurred_at)
    data["expires_at"] = _maybe(event.expires_at)
    if retention is not None:
        data["retain_until"] = _iso(event.occurred_at + retention)
    if event.tenant is not None:
        data["tenant"] = event.tenant
    data["links"] = {"status": status_url, "result": f"{status_url}/result"}
    message = {"type": EVENT_TYPES[event.status], "timestamp": _iso(event.occurred_at), "data": data}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def tenant_of(body: bytes) -> str | None:
    """The tenant a body announces a job of (None for bodies without one, or that are not ours)."""
    try:
        tenant = json.loads(body)["data"].get("tenant")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return tenant if isinstance(tenant, str) else None


def signature_headers(webhook_id: str, body: bytes, secrets: Sequence[str], at: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and one `v1,…` signature per secret (space-separated)."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(webhook_id, at, text) for secret in secrets)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
