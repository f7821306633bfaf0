"""2,000 POSTs from 50 concurrent clients: 2,000 records on job-requested, none twice, none lost."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from tests.integration.kafkautil import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CLIENTS, PER_CLIENT = 50, 40


async def _client(url: str, number: int) -> list[str]:
    ids = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for i in range(PER_CLIENT):
            # Half the clients send an Idempotency-Key (and go through the key store), half do not.
            headers = {"Idempotency-Key": f"c{number}-{i}", "X-Client-Id": f"client-{number}"} if number % 2 else {}
            response = await http.post(
                "/v1/jobs", json={"type": "load.test", "payload": {"c": number, "i": i}}, headers=headers
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    return ids


async def test_2000_posts_from_50_concurrent_clients(
    intake_url: str, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    batches = await asyncio.gather(*(_client(intake_url, n) for n in range(CLIENTS)))
    accepted = [job_id for batch in batches for job_id in batch]
    assert len(accepted) == len(set(accepted)) == CLIENTS * PER_CLIENT
    records = await read_all(kafka_settings, topics.requested, expect=len(accepted), deadline=60)
    codec = AvroCodec()
    events = [e for e in (codec.decode(r.value) for r in records) if isinstance(e, JobRequested)]
    on_topic = [e.job_id for e in events]
    assert len(on_topic) == CLIENTS * PER_CLIENT, "none lost"
    assert len(set(on_topic)) == len(on_topic), "none twice"
    assert set(on_topic) == set(accepted)
    assert all(r.key == e.job_id.encode() for r, e in zip(records, events, strict=True))
