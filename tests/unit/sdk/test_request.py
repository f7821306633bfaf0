"""The request model, job ids and request hashes: the same rules for the intake and the SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from jobrelay.sdk import InvalidJobRequest, JobSubmission, RequestLimits, build_requested, job_id_for, request_hash
from jobrelay.sdk.validation import validate_submission
from jobrelay.security.urls import UrlPolicy


def test_the_same_client_and_key_always_give_the_same_job_id() -> None:
    assert job_id_for("order-1", "billing") == job_id_for("order-1", "billing")
    assert uuid.UUID(job_id_for("order-1", "billing")).version == 5
    assert job_id_for("order-1", "billing") != job_id_for("order-1", "shipping")
    assert job_id_for("order-1") != job_id_for("order-2")
    assert job_id_for(None) != job_id_for(None), "without a key every job is new"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@given(payload=json_values)
def test_the_request_hash_ignores_key_order_and_formatting(payload: object) -> None:
    body = {"type": "demo.echo", "payload": payload, "max_attempts": 3}
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    assert request_hash(JobSubmission.parse(json.dumps(body))) == request_hash(JobSubmission.parse(reordered))


def test_the_request_hash_tells_different_requests_apart() -> None:
    base = JobSubmission.parse({"type": "demo.echo", "payload": {"n": 1}})
    assert request_hash(base) == request_hash(
        JobSubmission.parse({"type": "demo.echo", "payload": {"n": 1}, "max_attempts": 3})
    ), "defaults count as given"
    for change in ({"payload": {"n": 2}}, {"type": "demo.other"}, {"max_attempts": 4}, {"timeout_s": 5}):
        other = JobSubmission.parse({"type": "demo.echo", "payload": {"n": 1}} | change)
        assert request_hash(other) != request_hash(base), change


def test_the_event_carries_the_canonical_request() -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    submission = JobSubmission.parse(
        {"type": "demo.echo", "payload": {"b": 1, "a": "é"}, "timeout_s": 3, "expires_at": expires.isoformat()}
    )
    event = build_requested(submission, idempotency_key="k", client_id="c")
    assert event.payload == '{"a":"é","b":1}'
    assert event.job_id == job_id_for("k", "c") and event.request_hash == request_hash(submission)
    assert event.timeout_s == 3.0 and event.max_attempts == 3 and event.sequence == 0
    assert event.expires_at == expires.replace(microsecond=expires.microsecond // 1000 * 1000)


def test_operator_limits_travel_with_the_validation() -> None:
    limits = RequestLimits(max_payload_bytes=10, allowed_types=("report.*",), max_attempts=2)
    with pytest.raises(ValidationError) as caught:
        JobSubmission.parse({"type": "demo.echo", "payload": "x" * 20, "max_attempts": 3}, limits)
    kinds = {e["loc"][0]: e["type"] for e in caught.value.errors()}
    assert kinds == {"type": "job_type_not_allowed", "payload": "payload_too_large", "max_attempts": "too_large"}
    assert InvalidJobRequest.from_validation(caught.value).status == 413
    assert JobSubmission.parse({"type": "report.monthly", "payload": None}, limits).type == "report.monthly"


def test_a_callback_host_is_resolved_before_acceptance() -> None:
    body = {"type": "demo.echo", "payload": 1, "callback_url": "https://localhost/hook"}
    with pytest.raises(InvalidJobRequest) as caught:
        asyncio.run(validate_submission(body, RequestLimits()))
    assert caught.value.errors[0].field == "body.callback_url" and "127.0.0.1" in caught.value.errors[0].detail
    allowed = RequestLimits(url_policy=UrlPolicy.from_lists(networks=["127.0.0.0/8", "::1/128"]))
    assert asyncio.run(validate_submission(body, allowed)).callback_url == "https://localhost/hook"
