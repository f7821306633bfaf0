"""JobPublisher writes exactly what the intake writes for the same request, or nothing at all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import header
from jobrelay.sdk import InvalidJobRequest, JobPublisher, RequestLimits
from tests.integration.intakeserver import fresh_topics, intake_settings, running_intake
from tests.integration.kafkautil import read_all

pytestmark = pytest.mark.kafka
codec = AvroCodec()
JOB = {"type": "report.generate", "payload": {"month": "2025-03"}, "timeout_s": 60, "max_attempts": 4}


async def _only_event(kafka: KafkaSettings, topic: str) -> tuple[JobRequested, list[tuple[str, bytes]]]:
    (record,) = await read_all(kafka, topic)
    event = codec.decode(record.value)
    assert isinstance(event, JobRequested) and record.key == event.job_id.encode()
    return event, list(record.headers)


async def test_the_publisher_and_the_intake_build_the_same_job(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    async with JobPublisher.connect(kafka_settings, topics, client_id="billing", tenant="billing") as publisher:
        published = await publisher.publish(
            "report.generate", {"month": "2025-03"}, idempotency_key="inv-7", timeout_s=60, max_attempts=4
        )
    from_sdk, headers = await _only_event(kafka_settings, topics.requested)
    assert (published.id, published.request_hash) == (from_sdk.job_id, from_sdk.request_hash)
    assert header(headers, "ce_source") == "/jobrelay/sdk" and header(headers, "ce_subject") == published.id

    intake_topics = fresh_topics(kafka_settings)
    with running_intake(intake_settings(tmp_path), kafka_settings, intake_topics) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/v1/jobs", json=JOB, headers={"Idempotency-Key": "inv-7", "X-Client-Id": "billing"}
            )
    assert response.status_code == 202 and response.json()["id"] == published.id
    from_intake, _ = await _only_event(kafka_settings, intake_topics.requested)
    same = (
        "job_id",
        "job_type",
        "payload",
        "request_hash",
        "timeout_s",
        "max_attempts",
        "client_id",
        "idempotency_key",
        "tenant",  # the gateway's X-Client-Id, as the publisher was told
    )
    assert {f: getattr(from_sdk, f) for f in same} == {f: getattr(from_intake, f) for f in same}


@pytest.mark.parametrize(
    ("call", "status", "field"),
    [
        ({"job_type": "not a type", "payload": 1}, 422, "request.type"),
        ({"job_type": "demo.echo", "payload": "x" * 100}, 413, "request.payload"),
        (
            {"job_type": "demo.echo", "payload": 1, "callback_url": "https://169.254.169.254/"},
            422,
            "request.callback_url",
        ),
        ({"job_type": "demo.echo", "payload": 1, "max_attempts": 0}, 422, "request.max_attempts"),
    ],
    ids=["bad type", "payload too large", "SSRF callback", "max_attempts zero"],
)
async def test_an_invalid_request_is_refused_before_anything_is_published(
    kafka_settings: KafkaSettings, topics: TopicSettings, call: dict[str, object], status: int, field: str
) -> None:
    async with JobPublisher.connect(kafka_settings, topics, limits=RequestLimits(max_payload_bytes=50)) as publisher:
        with pytest.raises(InvalidJobRequest) as caught:
            await publisher.publish(**call)  # type: ignore[arg-type]
        await publisher.publish("demo.echo", {"valid": True})
    assert caught.value.status == status and field in [e.field for e in caught.value.errors]
    events = [codec.decode(r.value) for r in await read_all(kafka_settings, topics.requested)]
    assert [e.payload for e in events if isinstance(e, JobRequested)] == ['{"valid":true}']
