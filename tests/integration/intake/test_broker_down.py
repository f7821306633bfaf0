"""With its broker stopped the intake answers 503 (never a 202); once the broker is back, 202.

This test stops a broker, so it starts its own private one on other ports and stops only that;
the shared broker on 9092 is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings
from jobrelay.dev.localkafka import LocalKafka
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from tests.integration.intakeserver import (
    expected_job_id,
    fresh_topics,
    intake_settings,
    ready,
    running_intake,
    wait_until,
)
from tests.integration.kafkautil import read_all

# LocalKafka.up() drops its Popen handle while the broker runs on (by design: it is stopped by PID).
pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PORT = 19392


@pytest.fixture(scope="module")
def private_broker() -> Iterator[LocalKafka]:
    broker = LocalKafka(port=PORT, controller_port=PORT + 1)
    if broker.running_pid() is None and broker.status().reachable:
        pytest.fail(f"port {PORT} is taken by someone else's process")
    broker.up(timeout=120)
    try:
        yield broker
    finally:
        broker.down()


def test_broker_down_means_503_and_back_means_202(private_broker: LocalKafka, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=private_broker.bootstrap, request_timeout_ms=5000)
    topics = fresh_topics(kafka)
    settings = intake_settings(tmp_path, publish_timeout_s=3, unavailable_retry_after_s=2)
    job = {"type": "demo.echo", "payload": {"n": 1}}
    with running_intake(settings, kafka, topics) as url, httpx.Client(base_url=url, timeout=30) as http:
        before = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "before"})
        assert before.status_code == 202

        private_broker.down()
        during = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "during"})
        assert during.status_code == 503
        assert during.headers["retry-after"] == "2"
        assert during.headers["content-type"] == "application/problem+json"
        assert "same Idempotency-Key is safe" in during.json()["detail"]
        wait_until(lambda: not ready(url), 30, "intake not ready while the broker is down")

        private_broker.up(timeout=120)
        wait_until(lambda: ready(url), 60, "intake ready again")
        after = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "during"})
        assert after.status_code == 202, after.text
        assert after.json()["id"] == expected_job_id("during")

    records = asyncio.run(read_all(kafka, topics.requested))
    events = [e for e in (AvroCodec().decode(r.value) for r in records) if isinstance(e, JobRequested)]
    assert len(events) == len(records)
    assert {e.job_id for e in events} == {before.json()["id"], after.json()["id"]}
    # A send that timed out during the outage may still have landed: then under the same job id
    # and request hash, which the processor runs once.
    assert len({e.request_hash for e in events if e.job_id == after.json()["id"]}) == 1
