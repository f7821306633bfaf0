"""Every 202 has its JobRequested record on job-requested; idempotent retries add none."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import header
from jobrelay.messaging.partitioning import partition_for
from tests.integration.intakeserver import expected_job_id
from tests.integration.kafkautil import read_all

pytestmark = pytest.mark.kafka
codec = AvroCodec()


def _job(**extra: object) -> dict[str, object]:
    return {"type": "report.generate", "payload": {"month": "2025-01", "pages": [1, 2]}, **extra}


async def _requested(kafka: KafkaSettings, topics: TopicSettings) -> list[JobRequested]:
    """Everything on job-requested: the 202s came after the acks, so the end offsets include them."""
    records = await read_all(kafka, topics.requested)
    events = [codec.decode(r.value) for r in records]
    assert all(isinstance(e, JobRequested) for e in events)
    return events  # type: ignore[return-value]


async def test_a_202_means_the_job_request_is_on_kafka(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=123000)
    body = _job(callback_url="https://1.1.1.1/hooks/done", timeout_s=90, max_attempts=5, expires_at=expires.isoformat())
    async with httpx.AsyncClient(base_url=intake_url) as http:
        response = await http.post("/v1/jobs", json=body, headers={"X-Client-Id": "billing"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    status_url = f"http://status.test:8001/v1/jobs/{job_id}"
    assert response.json() == {
        "id": job_id,
        "status": "accepted",
        "links": {
            "status": status_url,
            "result": f"{status_url}/result",
            "events": f"{status_url}/events",
            "cancel": status_url,  # DELETE
        },
    }
    assert response.headers["location"] == status_url and response.headers["retry-after"] == "1"
    (record,) = await read_all(kafka_settings, topics.requested, expect=1)
    event = codec.decode(record.value)
    assert isinstance(event, JobRequested)
    assert record.key == job_id.encode()
    assert (event.job_id, event.job_type, event.sequence, event.attempt) == (job_id, "report.generate", 0, 1)
    assert json.loads(event.payload) == body["payload"]
    assert (event.callback_url, event.timeout_s, event.max_attempts) == ("https://1.1.1.1/hooks/done", 90.0, 5)
    assert event.expires_at == expires
    assert event.client_id == "billing" and event.idempotency_key is None and len(event.request_hash) == 64
    assert header(record.headers, "ce_type") == "jobrelay.job.requested.v1"
    assert header(record.headers, "ce_id") == event.event_id
    assert header(record.headers, "ce_subject") == job_id
    assert header(record.headers, "ce_source") == "/jobrelay/intake"
    assert header(record.headers, "content-type") == "application/avro"
    assert (header(record.headers, "traceparent") or "").startswith("00-")


async def test_the_trace_of_the_http_request_continues_in_the_record(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=intake_url) as http:
        response = await http.post("/v1/jobs", json=_job(), headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"})
    assert response.status_code == 202
    (record,) = await read_all(kafka_settings, topics.requested, expect=1)
    assert (header(record.headers, "traceparent") or "").startswith(f"00-{trace_id}-")


async def test_a_retry_with_the_same_key_gets_the_same_job_and_no_second_record(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    same_body_other_order = json.dumps({"payload": {"pages": [1, 2], "month": "2025-01"}, "type": "report.generate"})
    async with httpx.AsyncClient(base_url=intake_url) as http:
        first = await http.post("/v1/jobs", json=_job(), headers=key)
        again = await http.post(
            "/v1/jobs", content=same_body_other_order, headers=key | {"Content-Type": "application/json"}
        )
        different = await http.post("/v1/jobs", json=_job(payload={"month": "2025-02"}), headers=key)
        other_client = await http.post("/v1/jobs", json=_job(), headers=key | {"X-Client-Id": "someone-else"})
    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["id"] == first.json()["id"] == expected_job_id(key["Idempotency-Key"])
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert different.status_code == 422
    assert different.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in different.json()["errors"]] == ["header.Idempotency-Key"]
    assert other_client.status_code == 202 and other_client.json()["id"] != first.json()["id"]
    events = await _requested(kafka_settings, topics)
    assert sorted(e.job_id for e in events) == sorted([first.json()["id"], other_client.json()["id"]])


async def test_concurrent_retries_with_one_key_write_one_record(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with httpx.AsyncClient(base_url=intake_url) as http:
        responses = await asyncio.gather(*(http.post("/v1/jobs", json=_job(), headers=key) for _ in range(20)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    events = await _requested(kafka_settings, topics)
    assert len(events) == 1


async def test_without_a_key_every_post_is_a_new_job(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    async with httpx.AsyncClient(base_url=intake_url) as http:
        ids = [(await http.post("/v1/jobs", json=_job())).json()["id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert sorted(e.job_id for e in await _requested(kafka_settings, topics)) == sorted(ids)


async def test_a_job_lands_on_the_partition_every_producer_picks_for_its_id(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    """Co-partitioning: the processor's outputs (aiokafka, murmur2) go to the same partition number."""
    async with httpx.AsyncClient(base_url=intake_url) as http:
        ids = [(await http.post("/v1/jobs", json=_job())).json()["id"] for _ in range(12)]
    records = await read_all(kafka_settings, topics.requested, expect=len(ids))
    assert sorted(r.key for r in records) == sorted(i.encode() for i in ids)
    assert all(r.partition == partition_for(r.key, topics.partitions) for r in records)
    assert len({r.partition for r in records}) > 1, "twelve random ids on three partitions use more than one"


async def test_readiness_and_metrics(intake_url: str) -> None:
    async with httpx.AsyncClient(base_url=intake_url) as http:
        await http.post("/v1/jobs", json=_job())
        ready = await http.get("/readyz")
        metrics = (await http.get("/metrics")).text
        healthy = await http.get("/healthz")
    details = ready.json()
    assert details.pop("completions") in {"starting", "watching"}  # job-completed, for Prefer: wait
    assert ready.status_code == 200 and details | {"backlog": 0, "drain_per_s": 0.0} == {
        "ready": True,
        "kafka": "connected",
        "backlog": 0,  # the processors' backlog, once measured (nothing was submitted)
        "drain_per_s": 0.0,
    }
    assert healthy.status_code == 200
    assert 'jobrelay_intake_requests_total{outcome="accepted"}' in metrics
    assert "jobrelay_intake_accept_seconds_bucket" in metrics
