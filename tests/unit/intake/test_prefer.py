"""What a `Prefer` header asks the intake to wait, and the document a finished job is answered with."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobrelay.intake.prefer import finished_document, wait_preference
from jobrelay.jobs.events import JobCompleted, JobRequested, TerminalStatus, utcnow


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=5", 5),
        ("WAIT = 7", 7),
        ('wait="9"', 9),
        ("respond-async, wait=10", 10),
        ("wait=3; foo=bar", 3),
        ("wait=2, wait=60", 2),  # RFC 7240: only the first instance counts
        ("wait=0", 0),
        ("wait=99999999999999999999", 10**9),
    ],
)
def test_a_wait_preference_is_read(prefer: str, seconds: int) -> None:
    assert wait_preference(prefer) == seconds


@pytest.mark.parametrize("prefer", ["", "respond-async", "wait", "wait=", "wait=abc", "wait=-1", "wait=1.5", "wait=²"])
def test_a_missing_or_malformed_wait_is_ignored(prefer: str) -> None:
    assert wait_preference(prefer) is None


def test_a_replay_shows_the_original_request_time_and_expiry() -> None:
    original = utcnow() - timedelta(minutes=3)
    replayed = JobRequested(job_id="5b0a3c1e-0000-4000-8000-000000000001", job_type="demo.echo", payload='{"a": 1}')
    completed = JobCompleted(
        job_id=replayed.job_id,
        job_type="demo.echo",
        sequence=3,
        status=TerminalStatus.SUCCEEDED,
        result='{"a": 1}',
        started_at=original + timedelta(seconds=1),
        requested_at=original,
        expires_at=original + timedelta(days=1),
    )

    document = finished_document(replayed, completed, "http://status.test")

    assert (document["status"], document["result"], document["attempts"]) == ("succeeded", {"a": 1}, 1)
    assert document["created_at"].startswith(original.strftime("%Y-%m-%dT%H:%M:%S"))
    assert document["expires_at"].startswith((original + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert document["links"]["self"] == f"http://status.test/v1/jobs/{replayed.job_id}"
    assert "cancel" not in document["links"]
