"""How the SDK reads the HTTP answers: Retry-After, Preference-Applied, problem documents."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from jobrelay.sdk import JobNotFound, ProblemError, ServiceUnavailable
from jobrelay.sdk._http import ClientConfig, backoff, pause_after
from jobrelay.sdk.status import JobView, long_poll_applied, raise_for_problem, retry_after


def _response(status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"type": "about:blank", "title": "x", "status": status})


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after(_response(headers={"Retry-After": "3"})) == 3.0
    assert retry_after(_response(headers={"Retry-After": "Wed, 01 Jan 2025 12:00:05 GMT"}), now) == 5.0
    assert retry_after(_response(headers={"Retry-After": "soon"})) is None
    assert retry_after(_response()) is None


def test_long_poll_is_detected_from_preference_applied() -> None:
    assert long_poll_applied(_response(headers={"Preference-Applied": "wait=10"}))
    assert long_poll_applied(_response(headers={"Preference-Applied": "respond-async, wait=5"}))
    assert not long_poll_applied(_response())


def test_pause_follows_retry_after_unless_the_server_long_polled() -> None:
    view = JobView(id="j", type="t", status="running", retry_after=2.0)
    assert pause_after(_response(headers={"Preference-Applied": "wait=5"}), view, 30, 1) == 0
    assert pause_after(_response(), view, 30, 1) == 2.0
    assert pause_after(_response(), view, 0.5, 1) == 0.5, "never past the caller's deadline"
    assert ClientConfig().wait_headers(100, '"v3"') == {
        "Accept": "application/json",
        "Prefer": "wait=30",
        "If-None-Match": '"v3"',
    }
    assert "Prefer" not in ClientConfig().wait_headers(0.4, None)


def test_errors_carry_the_problem_document() -> None:
    with pytest.raises(ServiceUnavailable) as unavailable:
        raise_for_problem(_response(503, headers={"Retry-After": "4"}))
    assert unavailable.value.retry_after == 4.0 and backoff(unavailable.value, 0) == 4.0
    with pytest.raises(JobNotFound):
        raise_for_problem(_response(404))
    with pytest.raises(ProblemError) as bad:
        raise_for_problem(httpx.Response(422, json={"status": 422, "errors": [{"field": "body.type"}]}))
    assert bad.value.fields == ("body.type",)
    raise_for_problem(_response(304))
