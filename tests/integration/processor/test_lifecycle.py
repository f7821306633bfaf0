"""The whole life cycle as a client sees it: cancel, deadlines, re-run, timestamps and estimates.

Every test runs the real intake and status projector over HTTP and real processors (in this
process, or as subprocesses where they are killed) on the real broker, and checks both what the
client is told and what a read_committed reader of job-completed sees.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobRequested, TerminalStatus
from jobrelay.processor.settings import ProcessorSettings
from jobrelay.projector.main import create_app
from jobrelay.projector.settings import ProjectorSettings
from tests.integration.intakeserver import intake_settings, running_intake
from tests.integration.processor.conftest import Spawned, attempts_in, events, processor, wait_for
from tests.integration.projector.conftest import _serve, wait_until

pytestmark = pytest.mark.kafka

RETENTION_S = 3600
DEFAULT_RETRY_AFTER = 7  # distinguishable from any Retry-After computed from an estimate


@dataclass
class Api:
    """The two HTTP halves of jobrelay for one test."""

    intake: httpx.AsyncClient
    status: httpx.AsyncClient
    kafka: KafkaSettings
    topics: TopicSettings

    async def submit(self, job_type: str, payload: Any, **fields: Any) -> str:
        response = await self.intake.post("/v1/jobs", json={"type": job_type, "payload": payload, **fields})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["links"]["cancel"] == body["links"]["status"], "202 names where to cancel"
        job_id: str = body["id"]
        return job_id

    async def status_of(self, job_id: str, status: str, deadline: float = 30) -> dict[str, Any]:
        return await wait_until(self.status, job_id, lambda body: body["status"] == status, deadline)

    async def outcomes(self, expect: int) -> dict[str, list[JobCompleted]]:
        """Every JobCompleted a read_committed reader sees, by job (after `expect` arrived)."""
        found: dict[str, list[JobCompleted]] = {}
        for event in await events(self.kafka, self.topics.completed, expect=expect, deadline=60):
            assert isinstance(event, JobCompleted)
            found.setdefault(event.job_id, []).append(event)
        return found


@pytest.fixture
async def api(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[Api]:
    """A status projector and an intake (24 h default expiry unless a test overrides it) on the test's topics."""
    async with AsyncExitStack() as stack:
        settings = ProjectorSettings(
            db_path=tmp_path / "view.sqlite",
            lag_interval_s=0.2,
            catch_up_timeout_s=20,
            retention_s=RETENTION_S,
            retry_after_s=DEFAULT_RETRY_AFTER,
        )
        status_url = await _serve(stack, create_app(settings, kafka_settings, topics))
        status = await stack.enter_async_context(httpx.AsyncClient(base_url=status_url, timeout=30))
        intake_url = stack.enter_context(_intake(kafka_settings, topics, tmp_path, status_base_url=status_url))
        intake = await stack.enter_async_context(httpx.AsyncClient(base_url=intake_url, timeout=30))
        yield Api(intake, status, kafka_settings, topics)


def _intake(kafka: KafkaSettings, topics: TopicSettings, tmp: Path, **overrides: Any) -> Any:
    return running_intake(intake_settings(tmp, **overrides), kafka, topics)


def _settings(base: ProcessorSettings, **overrides: Any) -> ProcessorSettings:
    return base.model_copy(update=overrides)


def _sleep(seconds: float, record: Path, steps: int | None = None) -> dict[str, Any]:
    return {"seconds": seconds, "steps": steps or max(1, math.ceil(seconds)), "record": str(record)}


async def test_a_job_cancelled_before_it_starts_never_runs(
    api: Api,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    processor_settings: ProcessorSettings,
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran.txt"
    async with processor(kafka_settings, topics, _settings(processor_settings, max_in_flight=1)):
        blocker = await api.submit("demo.sleep", _sleep(30, ran))
        await api.status_of(blocker, "running")
        queued = await api.submit("demo.sleep", _sleep(1, ran))  # waits for the one slot
        response = await api.status.delete(f"/v1/jobs/{queued}")
        assert response.status_code == 202
        taken = response.json()
        assert taken["cancel_requested_at"] is not None and taken["status"] == "accepted"
        cancelled = await api.status_of(queued, "cancelled")
        assert cancelled["error"]["code"] == "cancelled" and cancelled["attempts"] == 0
        assert cancelled["started_at"] is None and "cancel" not in cancelled["links"]
        assert (await api.status.delete(f"/v1/jobs/{blocker}")).status_code == 202
        await api.status_of(blocker, "cancelled")
    assert queued not in attempts_in(ran), "the handler of a job cancelled before its start never ran"
    outcomes = await api.outcomes(expect=2)
    assert [o.status for o in outcomes[queued]] == [TerminalStatus.CANCELLED]
    assert [o.status for o in outcomes[blocker]] == [TerminalStatus.CANCELLED]


async def test_a_running_job_is_cancelled_within_its_grace_period_once_however_often_asked(
    api: Api,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    processor_settings: ProcessorSettings,
    tmp_path: Path,
) -> None:
    async with processor(kafka_settings, topics, _settings(processor_settings, cancel_grace_s=5)):
        job = await api.submit("demo.sleep", _sleep(30, tmp_path / "ran.txt", steps=30))
        running = await api.status_of(job, "running")
        assert running["links"]["cancel"] == running["links"]["self"]
        first, second = await asyncio.gather(api.status.delete(f"/v1/jobs/{job}"), api.status.delete(f"/v1/jobs/{job}"))
        assert first.status_code == 202, first.text
        # A repeated cancel is taken again while the job runs; when the first one has already
        # ended it (the handler stops at once), the repeat says so instead.
        assert second.status_code == 202 or (second.status_code == 409 and "cancelled" in second.text), second.text
        asked = datetime.fromisoformat(first.json()["cancel_requested_at"])
        cancelled = await api.status_of(job, "cancelled", deadline=10)
        ended = datetime.fromisoformat(cancelled["completed_at"])
        assert ended - asked < timedelta(seconds=5), "cancelled within the grace period (the handler stops at once)"
        assert datetime.fromisoformat(cancelled["cancel_requested_at"]) == asked, "the first cancel is the one kept"
        assert "cancel_too_late" not in cancelled and cancelled["attempts"] == 1
        again = await api.status.delete(f"/v1/jobs/{job}")
        assert again.status_code == 409 and again.json()["job_status"] == "cancelled"
    outcomes = await api.outcomes(expect=1)
    assert [o.status for o in outcomes[job]] == [TerminalStatus.CANCELLED], "exactly one outcome"


async def test_a_handler_that_ignores_cancellation_is_cut_off_after_the_grace_period(
    api: Api, kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    settings = _settings(
        processor_settings,
        cancel_grace_s=1,
        handler_modules=(*processor_settings.handler_modules, "tests.integration.processor.user_handlers"),
    )
    async with processor(kafka_settings, topics, settings):
        job = await api.submit("test.stubborn", {"seconds": 20})
        await api.status_of(job, "running")
        assert (await api.status.delete(f"/v1/jobs/{job}")).status_code == 202
        cancelled = await api.status_of(job, "cancelled", deadline=10)
        assert "did not stop within 1s" in cancelled["error"]["message"]
    outcomes = await api.outcomes(expect=1)
    assert [o.status for o in outcomes[job]] == [TerminalStatus.CANCELLED]


async def test_cancelling_a_finished_job_is_refused_and_its_outcome_stays(
    api: Api, kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    async with processor(kafka_settings, topics, processor_settings):
        job = await api.submit("demo.echo", {"n": 1})
        done = await api.status_of(job, "succeeded")
        assert "cancel" not in done["links"] and "retry" not in done["links"], "nothing to cancel or re-run"
        refused = await api.status.delete(f"/v1/jobs/{job}")
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["job_status"] == "succeeded" and "succeeded" in problem["detail"]
        assert (await api.status.get(f"/v1/jobs/{job}")).json()["status"] == "succeeded"
    outcomes = await api.outcomes(expect=1)
    assert [o.status for o in outcomes[job]] == [TerminalStatus.SUCCEEDED]


async def test_cancelling_an_unknown_or_malformed_id_says_so(api: Api) -> None:
    unknown = await api.status.delete(f"/v1/jobs/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    malformed = await api.status.delete("/v1/jobs/not-a-job-id")
    assert malformed.status_code == 422 and malformed.headers["content-type"] == "application/problem+json"
    assert "job_id" in json.dumps(malformed.json()), "the problem names the id"
    assert await events(api.kafka, api.topics.requested) == [], "nothing was sent for either"


async def test_a_cancel_sent_while_every_processor_is_down_stops_the_job_before_it_runs(
    api: Api, spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    first = spawn()
    await first.wait_ready()
    first.stop(signal.SIGKILL)
    ran = tmp_path / "ran.txt"
    job = await api.submit("demo.sleep", _sleep(1, ran))
    assert (await api.status.delete(f"/v1/jobs/{job}")).status_code == 202
    second = spawn()
    await second.wait_ready(deadline=90)
    cancelled = await api.status_of(job, "cancelled", deadline=60)
    assert cancelled["error"]["message"] == "cancelled before it started"
    assert job not in attempts_in(ran), "the job never ran"
    outcomes = await api.outcomes(expect=1)
    assert [o.status for o in outcomes[job]] == [TerminalStatus.CANCELLED]
    second.stop(signal.SIGTERM)


async def test_cancels_during_a_rebalance_give_each_job_exactly_one_outcome(
    api: Api, spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    ran = tmp_path / "ran.txt"
    one, two = spawn(), spawn()
    await one.wait_ready()
    await two.wait_ready()
    jobs = [await api.submit("demo.sleep", _sleep(2, ran)) for _ in range(12)]
    await wait_for(lambda: asyncio.to_thread(attempts_in, ran), lambda runs: len(runs) >= 3, 30, "jobs started")
    one.stop(signal.SIGTERM)  # its partitions move to the other processor while the cancels arrive
    answers = await asyncio.gather(*(api.status.delete(f"/v1/jobs/{job}") for job in jobs))
    assert {a.status_code for a in answers} <= {202, 409}, [a.text for a in answers if a.status_code >= 300]
    outcomes = await api.outcomes(expect=len(jobs))
    assert set(outcomes) == set(jobs)
    for job, answer in zip(jobs, answers, strict=True):
        statuses = [o.status for o in outcomes[job]]
        assert len(statuses) == 1, f"job {job} has {statuses}"
        view = await api.status_of(job, statuses[0].value.lower())
        if answer.status_code == 409:  # it had succeeded before the cancel was asked for
            assert statuses == [TerminalStatus.SUCCEEDED] and view["cancel_requested_at"] is None
            continue
        assert statuses[0] in (TerminalStatus.CANCELLED, TerminalStatus.SUCCEEDED), "the cancel, or what beat it"
        assert view["cancel_requested_at"] is not None
        assert view.get("cancel_too_late", False) is (statuses[0] is TerminalStatus.SUCCEEDED)
    two.stop(signal.SIGTERM)


async def test_an_attempt_still_running_at_expires_at_ends_expired(
    api: Api,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    processor_settings: ProcessorSettings,
    tmp_path: Path,
) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    async with processor(kafka_settings, topics, processor_settings):
        job = await api.submit("demo.sleep", _sleep(30, tmp_path / "ran.txt"), expires_at=expires.isoformat())
        await api.status_of(job, "running")
        expired = await api.status_of(job, "expired", deadline=15)
    assert expired["error"]["code"] == "expired" and "while attempt 1 was running" in expired["error"]["message"]
    ended = datetime.fromisoformat(expired["completed_at"])
    assert expires <= ended < expires + timedelta(seconds=3), "the attempt ended at its deadline"
    outcomes = await api.outcomes(expect=1)
    assert [o.status for o in outcomes[job]] == [TerminalStatus.EXPIRED]


async def test_a_job_without_expires_at_gets_the_default_expiry(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings, tmp_path: Path
) -> None:
    with _intake(kafka_settings, topics, tmp_path, default_expires_in_s=2) as intake_url:
        async with httpx.AsyncClient(base_url=intake_url) as intake:
            response = await intake.post("/v1/jobs", json={"type": "demo.sleep", "payload": {"seconds": 30}})
    assert response.status_code == 202
    (requested,) = await events(kafka_settings, topics.requested, expect=1)
    assert isinstance(requested, JobRequested) and requested.expires_at is not None
    assert requested.expires_at - requested.occurred_at == timedelta(seconds=2)
    async with processor(kafka_settings, topics, processor_settings):
        (outcome,) = await events(kafka_settings, topics.completed, expect=1, deadline=30)
    assert isinstance(outcome, JobCompleted) and outcome.status is TerminalStatus.EXPIRED
    assert outcome.expires_at == requested.expires_at


async def test_a_failed_job_is_re_run_as_a_new_job_linked_both_ways(
    api: Api, kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    async with processor(kafka_settings, topics, processor_settings):
        old = await api.submit("demo.fail", {"retryable": False, "message": "no such customer"})
        failed = await api.status_of(old, "failed")
        assert failed["links"]["retry"] == f"{failed['links']['self']}/retry"
        first = await api.status.post(failed["links"]["retry"].removeprefix(str(api.status.base_url)))
        again = await api.status.post(f"/v1/jobs/{old}/retry")
        assert (first.status_code, again.status_code) == (202, 202)
        new = first.json()["id"]
        assert new != old and again.json()["id"] == new, "one re-run per job: repeating the POST is safe"
        assert again.headers["idempotent-replayed"] == "true"
        rerun = await api.status_of(new, "failed")
        assert rerun["retry_of"] == old and rerun["links"]["retry_of"].endswith(f"/v1/jobs/{old}")
        assert rerun["started_at"] is not None and rerun["attempts"] == 1, "the new job ran"
        assert rerun["error"]["message"] == "no such customer"
        original = (await api.status.get(f"/v1/jobs/{old}")).json()
        assert original["links"]["retried_as"].endswith(f"/v1/jobs/{new}")
        listed = (await api.status.get("/v1/jobs", params={"status": "failed"})).json()["items"]
        assert {item["id"]: item["links"].get("retried_as", "")[-36:] for item in listed}[old] == new
        succeeded = await api.submit("demo.echo", 1)
        await api.status_of(succeeded, "succeeded")
        refused = await api.status.post(f"/v1/jobs/{succeeded}/retry")
        assert refused.status_code == 409 and refused.json()["job_status"] == "succeeded"
    outcomes = await api.outcomes(expect=3)
    assert [o.status for o in outcomes[old]] == [TerminalStatus.FAILED]
    assert [o.status for o in outcomes[new]] == [TerminalStatus.FAILED]


async def test_timestamps_are_ordered_and_estimates_drive_retry_after(
    api: Api,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    processor_settings: ProcessorSettings,
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran.txt"
    async with processor(kafka_settings, topics, _settings(processor_settings, max_in_flight=1)):
        first = await api.submit("demo.sleep", _sleep(3, ran))
        queued_before_history = await api.status.get(f"/v1/jobs/{first}")
        assert queued_before_history.json()["estimated_completion"] is None, "no history: nothing to estimate from"
        assert queued_before_history.headers["retry-after"] == str(DEFAULT_RETRY_AFTER)
        done = await api.status_of(first, "succeeded")
        created, started, completed = (
            datetime.fromisoformat(done[k]) for k in ("created_at", "started_at", "completed_at")
        )
        assert created <= started <= completed
        assert completed - started >= timedelta(seconds=3)
        assert datetime.fromisoformat(done["retain_until"]) == completed + timedelta(seconds=RETENTION_S)
        assert done["estimated_completion"] is None and datetime.fromisoformat(done["expires_at"]) > completed
        blocker = await api.submit("demo.sleep", _sleep(30, ran))
        await api.status_of(blocker, "running")
        queued = await api.submit("demo.sleep", _sleep(3, ran))
        response = await api.status.get(f"/v1/jobs/{queued}")
        body = response.json()
        assert body["status"] == "accepted" and body["estimated_completion"] is not None
        estimate = datetime.fromisoformat(body["estimated_completion"])
        now = parsedate_to_datetime(response.headers["date"])
        assert estimate >= now + timedelta(seconds=2), "a median run of that type (3 s) ahead"
        retry_after = int(response.headers["retry-after"])
        assert retry_after != DEFAULT_RETRY_AFTER
        assert abs(retry_after - (estimate - now).total_seconds()) <= 1.5, "Retry-After follows the estimate"
        for job in (blocker, queued):
            assert (await api.status.delete(f"/v1/jobs/{job}")).status_code == 202
            await api.status_of(job, "cancelled")
