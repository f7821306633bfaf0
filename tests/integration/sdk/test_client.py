"""JobClient and AsyncJobClient against a real intake and a status server that answers like the
projector (long-polling or not).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.intake.main import create_app
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from jobrelay.sdk import AsyncJobClient, JobClient, JobNotFound, ProblemError, ServiceUnavailable, WaitTimeout
from tests.integration.intakeserver import intake_settings, running_intake, serving
from tests.integration.kafkautil import read_all
from tests.integration.sdk.fakeprojector import fake_projector

pytestmark = pytest.mark.kafka


@pytest.fixture
def intake_url(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> Iterator[str]:
    with running_intake(intake_settings(tmp_path), kafka_settings, topics) as url:
        yield url


async def test_submit_returns_once_the_job_is_on_kafka_and_a_retry_is_the_same_job(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    async with AsyncJobClient(intake_url, client_id="reports") as client:
        accepted = await client.submit("report.generate", {"month": 1}, idempotency_key="k-1", max_attempts=2)
        again = await client.submit("report.generate", {"month": 1}, idempotency_key="k-1", max_attempts=2)
        with pytest.raises(ProblemError) as bad:
            await client.submit("report.generate", {"month": 1}, timeout_s=-1)
    assert accepted.status == "accepted" and accepted.location == accepted.links["status"]
    assert again.id == accepted.id and again.replayed and not accepted.replayed
    assert bad.value.status == 422 and bad.value.fields == ("body.timeout_s",)
    (record,) = await read_all(kafka_settings, topics.requested)
    event = AvroCodec().decode(record.value)
    assert isinstance(event, JobRequested)
    assert (event.job_id, event.client_id, event.max_attempts) == (accepted.id, "reports", 2)


def test_sync_submit_sends_a_fresh_key_so_its_retries_are_safe(intake_url: str) -> None:
    with JobClient(intake_url) as client:
        first = client.submit("demo.echo", 1)
        second = client.submit("demo.echo", 1)
    assert first.id != second.id and uuid.UUID(first.id).version == 8, "a generated Idempotency-Key each time"


def _unavailable_count() -> float:
    return REGISTRY.get_sample_value("jobrelay_intake_requests_total", {"outcome": "503"}) or 0.0


def test_submit_retries_a_503_then_raises_it(tmp_path: Path) -> None:
    nobody = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000)
    settings = intake_settings(tmp_path, unavailable_retry_after_s=1)
    before = _unavailable_count()
    app = create_app(settings, nobody, TopicSettings())
    with serving(app) as url, JobClient(url, max_retries=2) as client, pytest.raises(ServiceUnavailable) as caught:
        client.submit("demo.echo", 1)
    assert caught.value.retry_after == 1.0
    assert _unavailable_count() - before == 3, "one try and two retries, each answered 503"


def test_wait_follows_retry_after_when_the_server_does_not_long_poll() -> None:
    with fake_projector(retry_after=1) as fake, JobClient(status_base_url=fake.url) as client:
        fake.scripts["job-1"] = ["accepted", "running", "succeeded"]
        done = client.wait("job-1", timeout=30)
    assert done.status == "succeeded" and done.result == {"echo": 1} and done.terminal
    gaps = [b.at - a.at for a, b in zip(fake.seen, fake.seen[1:], strict=False)]
    assert len(fake.seen) == 3 and all(gap >= 0.95 for gap in gaps), "waited Retry-After between polls"


def test_wait_long_polls_where_the_server_supports_it() -> None:
    with fake_projector(long_poll=True, retry_after=30) as fake, JobClient(status_base_url=fake.url) as client:
        fake.scripts["job-2"] = ["accepted", "running", "running", "failed"]
        done = client.wait("job-2", timeout=60)
    assert done.status == "failed" and len(fake.seen) == 4, "no Retry-After sleeps: one request per change"
    assert all(s.headers["prefer"].startswith("wait=") for s in fake.seen)
    assert fake.seen[1].headers["if-none-match"] == '"job-2-0"'


async def test_async_wait_gives_up_at_its_deadline_with_the_last_status() -> None:
    with fake_projector(long_poll=True) as fake:
        fake.scripts["stuck"] = ["running"]
        async with AsyncJobClient(status_base_url=fake.url) as client:
            with pytest.raises(WaitTimeout) as caught:
                await client.wait("stuck", timeout=1.5)
            with pytest.raises(JobNotFound):
                await client.get("unknown-job")
            view = await client.get("stuck")
    assert caught.value.last.status == "running" and caught.value.job_id == "stuck"
    assert view.retry_after == 1.0 and view.etag is not None
