"""The webhook message as receivers see it, verified with the `standardwebhooks` library."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobrelay.jobs.events import JobCompleted, JobError, TerminalStatus
from jobrelay.notifier.webhooks import signature_headers, webhook_body

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()


def _event(**fields: object) -> JobCompleted:
    defaults: dict[str, object] = {
        "job_id": "j-1",
        "job_type": "report.generate",
        "sequence": 2,
        "status": TerminalStatus.SUCCEEDED,
        "result": '{"rows": [1, 2]}',
        "attempt": 2,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    }
    return JobCompleted(**(defaults | fields))  # type: ignore[arg-type]


def test_the_body_names_the_job_its_outcome_and_where_to_read_more() -> None:
    body = json.loads(webhook_body(_event(), "http://status.example/"))
    assert body == {
        "type": "job.completed",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "data": {
            "id": "j-1",
            "type": "report.generate",
            "status": "succeeded",
            "result": {"rows": [1, 2]},
            "attempts": 2,
            "created_at": None,
            "started_at": None,
            "completed_at": "2026-01-02T03:04:05.678Z",
            "expires_at": None,
            "links": {
                "status": "http://status.example/v1/jobs/j-1",
                "result": "http://status.example/v1/jobs/j-1/result",
            },
        },
    }


def test_a_failure_carries_its_error_and_no_result() -> None:
    event = _event(status=TerminalStatus.EXPIRED, result=None, error=JobError("expired", "past expires_at", True))
    data = json.loads(webhook_body(event, "http://s"))["data"]
    assert (data["status"], data["error"]) == ("expired", {"code": "expired", "message": "past expires_at"})
    assert "result" not in data


def test_a_result_that_is_not_json_is_passed_on_as_text_not_dropped() -> None:
    assert json.loads(webhook_body(_event(result="plain text ü"), "http://s"))["data"]["result"] == "plain text ü"


def test_every_secret_in_rotation_verifies_alone_and_others_do_not() -> None:
    body = webhook_body(_event(), "http://s")
    headers = signature_headers("evt-1", body, [OLD, NEW], datetime.now(UTC))
    assert headers["webhook-id"] == "evt-1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(sig.startswith("v1,") for sig in headers["webhook-signature"].split(" "))
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(body, headers)


def test_a_tampered_body_or_id_does_not_verify() -> None:
    body = webhook_body(_event(), "http://s")
    headers = signature_headers("evt-1", body, [OLD], datetime.now(UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(body.replace(b"succeeded", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(body, headers | {"webhook-id": "evt-2"})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (TerminalStatus.SUCCEEDED, "job.completed"),
        (TerminalStatus.FAILED, "job.completed"),
        (TerminalStatus.CANCELLED, "job.cancelled"),
        (TerminalStatus.EXPIRED, "job.expired"),
    ],
)
def test_the_message_type_says_how_the_job_ended(status: TerminalStatus, kind: str) -> None:
    body = json.loads(webhook_body(_event(status=status), "http://s"))
    assert (body["type"], body["data"]["status"]) == (kind, status.value.lower())


def test_the_body_carries_the_timestamps_and_when_the_result_is_purged() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    event = _event(
        requested_at=at - timedelta(seconds=10),
        started_at=at - timedelta(seconds=8),
        expires_at=at + timedelta(days=1),
    )
    data = json.loads(webhook_body(event, "http://s", timedelta(days=7)))["data"]
    assert data["created_at"] == "2026-01-02T03:03:55.678Z" and data["started_at"] == "2026-01-02T03:03:57.678Z"
    assert data["completed_at"] == "2026-01-02T03:04:05.678Z" and data["expires_at"] == "2026-01-03T03:04:05.678Z"
    assert data["retain_until"] == "2026-01-09T03:04:05.678Z"
