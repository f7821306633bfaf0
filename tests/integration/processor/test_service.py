"""The service as deployed: the app's lifespan runs the processor; health, readiness, metrics."""

from __future__ import annotations

import json

import httpx
import pytest
from asgi_lifespan import LifespanManager

from jobrelay.config.settings import KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.jobs.events import JobCompleted
from jobrelay.processor.handlers import load_registry
from jobrelay.processor.main import Config, create_app
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.processor.conftest import events, publisher, request, wait_for

pytestmark = pytest.mark.kafka


async def test_user_handlers_run_and_the_service_reports_health_and_metrics(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    settings = processor_settings.model_copy(
        update={"handler_modules": ("jobrelay.processor.demo", "tests.integration.processor.user_handlers")}
    )
    config = Config(processor=settings, kafka=kafka_settings, topics=topics, observability=ObservabilitySettings())
    failures: list[BaseException] = []
    app = create_app(config, load_registry(settings.handler_modules), failures.append)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://p") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await wait_for(lambda: http.get("/readyz"), lambda r: r.status_code == 200, 60, "never ready")
        assert ready.json()["partitions"] == [0, 1, 2] and "test.shout" in ready.json()["handlers"]
        job = request("test.shout", {"text": "hello"})
        async with publisher(kafka_settings, topics) as pub:
            await pub.publish(job)
        (done,) = await events(kafka_settings, topics.completed, expect=1)
        assert isinstance(done, JobCompleted) and json.loads(done.result or "") == "HELLO"
        metrics = (await http.get("/metrics")).text
    assert 'jobrelay_processor_jobs_succeeded_total{job_type="test.shout"} 1.0' in metrics
    assert "jobrelay_processor_transactions_total" in metrics
    assert not failures
