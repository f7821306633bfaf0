"""Sync-if-fast: `POST /v1/jobs` with `Prefer: wait=N` on the four service processes, as a client sees it.

The stack's intake caps waits at `MAX_WAIT_S` (JOBRELAY_INTAKE_MAX_WAIT_S in tests/e2e/conftest.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobrelay.sdk import Accepted, JobView
from tests.e2e.conftest import MAX_WAIT_S, RunningStack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# What the intake knows of a finished job and the status view shows the same way (the view adds
# what only job-progress carries and its own retain_until).
SHARED = ("id", "type", "status", "attempts", "result", "created_at", "started_at", "completed_at", "expires_at")


@pytest.fixture
async def http(running_stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stack's intake, once the intake reads job-completed (waits are honoured from then on)."""
    async with httpx.AsyncClient(
        base_url=running_stack.url("intake"), headers=running_stack.auth, timeout=60.0
    ) as client:
        deadline = time.monotonic() + 60
        while (await client.get("/readyz")).json().get("completions") != "watching":
            assert time.monotonic() < deadline, "the intake never read job-completed"
            await asyncio.sleep(0.1)
        yield client


async def _post(
    http: httpx.AsyncClient, job_type: str, payload: Any, prefer: str | None = None, key: str | None = None
) -> tuple[httpx.Response, float]:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    if prefer is not None:
        headers["Prefer"] = prefer
    started = time.monotonic()
    response = await http.post("/v1/jobs", json={"type": job_type, "payload": payload}, headers=headers)
    return response, time.monotonic() - started


def _assert_plain_202(response: httpx.Response, status_base: str) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    job_url = f"{status_base}/v1/jobs/{body['id']}"
    assert body == {
        "id": body["id"],
        "status": "accepted",
        "links": {"status": job_url, "result": f"{job_url}/result", "events": f"{job_url}/events", "cancel": job_url},
    }
    assert response.headers["location"] == job_url and response.headers["retry-after"].isdigit()
    assert "preference-applied" not in response.headers
    job_id: str = body["id"]
    return job_id


async def test_a_job_that_ends_within_the_wait_answers_200_with_its_final_status(
    running_stack: RunningStack, http: httpx.AsyncClient
) -> None:
    response, _ = await _post(http, "demo.echo", {"greeting": "hello"}, prefer="wait=5")

    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=5"
    document = response.json()
    assert (document["status"], document["result"]) == ("succeeded", {"greeting": "hello"})
    job_url = f"{running_stack.url('projector')}/v1/jobs/{document['id']}"
    assert response.headers["content-location"] == job_url and document["links"]["self"] == job_url
    async with running_stack.client() as client:
        view = await client.wait(document["id"], timeout=30)
    served = (await http.get(job_url)).json()
    assert view.status == "succeeded"
    assert {k: document[k] for k in SHARED} == {k: served[k] for k in SHARED}, "the status view's document"
    assert document["links"] == served["links"]
    assert 'jobrelay_intake_waits_total{outcome="finished"}' in (await http.get("/metrics")).text


async def test_a_job_that_outlasts_the_wait_gets_the_usual_202_after_the_wait(
    running_stack: RunningStack, http: httpx.AsyncClient
) -> None:
    response, elapsed = await _post(http, "demo.sleep", {"seconds": 10, "steps": 2}, prefer="wait=5")

    job_id = _assert_plain_202(response, running_stack.url("projector"))
    assert elapsed >= 4.5, f"answered after {elapsed:.1f}s: it did not wait"
    async with running_stack.client() as client:
        assert (await client.get(job_id)).status in {"accepted", "running"}, "still running, as the 202 says"
        await client.cancel(job_id)  # frees the processor for the other tests


async def test_without_the_header_a_job_that_would_end_at_once_still_gets_202(
    running_stack: RunningStack, http: httpx.AsyncClient
) -> None:
    response, _ = await _post(http, "demo.echo", {"n": 1})

    job_id = _assert_plain_202(response, running_stack.url("projector"))
    async with running_stack.client() as client:
        assert (await client.wait(job_id, timeout=30)).result == {"n": 1}


@pytest.mark.parametrize("prefer", ["wait=0", "wait=abc", "wait=-3", "wait=1.5", "wait", "respond-async"])
async def test_a_malformed_or_zero_wait_is_ignored(
    running_stack: RunningStack, http: httpx.AsyncClient, prefer: str
) -> None:
    response, _ = await _post(http, "demo.echo", {"n": 2}, prefer=prefer)

    _assert_plain_202(response, running_stack.url("projector"))


async def test_a_replay_with_prefer_wait_answers_200_with_the_same_job(http: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    first, _ = await _post(http, "demo.echo", {"replayed": True}, prefer="wait=5", key=key)
    again, _ = await _post(http, "demo.echo", {"replayed": True}, prefer="wait=5", key=key)

    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.headers["idempotent-replayed"] == "true" and again.headers["preference-applied"] == "wait=5"
    assert "idempotent-replayed" not in first.headers
    assert {k: again.json()[k] for k in SHARED} == {k: first.json()[k] for k in SHARED}


async def test_a_replay_with_prefer_wait_of_a_job_accepted_without_it_answers_200(
    running_stack: RunningStack, http: httpx.AsyncClient
) -> None:
    key = str(uuid.uuid4())
    accepted, _ = await _post(http, "demo.echo", {"later": 1}, key=key)
    job_id = _assert_plain_202(accepted, running_stack.url("projector"))
    async with running_stack.client() as client:
        await client.wait(job_id, timeout=30)
    served = (await http.get(f"{running_stack.url('projector')}/v1/jobs/{job_id}")).json()

    replay, _ = await _post(http, "demo.echo", {"later": 1}, prefer="wait=5", key=key)

    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert {k: replay.json()[k] for k in SHARED} == {k: served[k] for k in SHARED}, "the job as it was accepted"


async def test_a_wait_above_the_cap_is_capped(http: httpx.AsyncClient) -> None:
    response, _ = await _post(http, "demo.echo", {"n": 3}, prefer="respond-async, wait=3600")

    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == f"wait={MAX_WAIT_S}"


async def test_the_sdk_returns_the_final_status_when_the_job_ends_within_the_wait(
    running_stack: RunningStack,
) -> None:
    async with running_stack.client() as client:
        done = await client.submit("demo.echo", [1, 2, 3], wait=5)
        pending = await client.submit("demo.sleep", {"seconds": 10, "steps": 2}, wait=1)
        await client.cancel(pending)

    assert isinstance(done, JobView) and (done.status, done.result) == ("succeeded", [1, 2, 3])
    assert isinstance(pending, Accepted) and pending.status == "accepted"
