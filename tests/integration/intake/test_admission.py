"""Admission control: past the backlog threshold the intake answers 503 with a Retry-After, learned through Kafka."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.intakeserver import intake_settings, running_intake
from tests.integration.processor.conftest import processor, processor_settings, publisher, request

pytestmark = pytest.mark.kafka
__all__ = ["processor_settings"]  # the processor tests' fixture, used here too

BODY = {"type": "demo.echo", "payload": {"n": 1}}


async def _until_status(http: httpx.AsyncClient, status: int, deadline: float) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        response = await http.post("/v1/jobs", json=BODY)
        if response.status_code == status:
            return response
        assert time.monotonic() < end, f"POST still answers {response.status_code}: {response.text}"
        await asyncio.sleep(0.2)  # the poll interval of a condition with a deadline


async def test_with_the_processors_stopped_and_the_backlog_past_the_threshold_post_gets_503_until_drained(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings, tmp_path: Path
) -> None:
    async with publisher(kafka_settings, topics) as pub:  # work nobody processes yet
        for _ in range(30):
            await pub.publish(request("demo.echo", {"n": 0}))
    settings = intake_settings(
        tmp_path, max_backlog=20, processor_group_id=processor_settings.group_id, backlog_interval_s=0.3
    )
    with running_intake(settings, kafka_settings, topics) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            refused = await _until_status(http, 503, deadline=15)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/overloaded") and refused.json()["backlog"] >= 30
            assert int(refused.headers["retry-after"]) >= 1
            ready = (await http.get("/readyz")).json()
            assert ready["backlog"] >= 30, "operators see the backlog"
            started = time.monotonic()
            async with processor(kafka_settings, topics, processor_settings):
                accepted = await _until_status(http, 202, deadline=60)
            backlog, wait = refused.json()["backlog"], refused.headers["retry-after"]
            drained = time.monotonic() - started
            print(f"figure: backlog {backlog} > 20: 503 Retry-After {wait} s; then 202 after {drained:.1f} s")
            assert accepted.json()["status"] == "accepted"
