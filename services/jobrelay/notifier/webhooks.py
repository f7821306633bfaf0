"""The webhook message: its JSON body and its Standard Webhooks signature headers.

The body is built once, when the completion is recorded, and kept as bytes: every retry sends
the very same bytes under the very same `webhook-id`, only `webhook-timestamp` and the
signatures are fresh (receivers refuse timestamps older than a few minutes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from jobrelay.jobs.events import JobCompleted

__all__ = ["EVENT_TYPE", "signature_headers", "webhook_body"]

EVENT_TYPE = "job.completed"


def _result(text: str) -> Any:
    """The job's result as JSON; text that is not JSON is passed on as a JSON string, not dropped."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(event: JobCompleted, status_base_url: str) -> bytes:
    """The JSON body announcing `event`, with links to the job's status and result."""
    status_url = f"{status_base_url.rstrip('/')}/v1/jobs/{event.job_id}"
    data: dict[str, Any] = {"id": event.job_id, "type": event.job_type, "status": event.status.value.lower()}
    if event.result is not None:
        data["result"] = _result(event.result)
    if event.error is not None:
        data["error"] = {"code": event.error.code, "message": event.error.message}
    data["attempts"] = event.attempt
    data["links"] = {"status": status_url, "result": f"{status_url}/result"}
    message = {"type": EVENT_TYPE, "timestamp": _iso(event.occurred_at), "data": data}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def signature_headers(webhook_id: str, body: bytes, secrets: Sequence[str], at: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and one `v1,…` signature per secret (space-separated)."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(webhook_id, at, text) for secret in secrets)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
