"""Many jobs at once: every one gets exactly one outcome."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, TerminalStatus
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.processor.conftest import events, processor, publisher, request

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

JOBS = 1000


async def test_a_thousand_jobs_give_a_thousand_outcomes_each_job_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    jobs = [request("demo.echo", {"n": n}) for n in range(JOBS)]
    async with publisher(kafka_settings, topics) as pub:
        sent = [
            await pub.producer.send(topics.requested, pub.codec.encode(job), key=job.job_id.encode()) for job in jobs
        ]
        await asyncio.gather(*sent)
    async with processor(kafka_settings, topics, processor_settings):
        completed = await events(kafka_settings, topics.completed, expect=JOBS, deadline=150)
    # Read again once the processor has stopped: nothing more arrived after the drain.
    completed = await events(kafka_settings, topics.completed)
    counts = Counter(e.job_id for e in completed)
    assert len(completed) == JOBS and set(counts) == {job.job_id for job in jobs}
    assert max(counts.values()) == 1
    assert all(isinstance(e, JobCompleted) and e.status is TerminalStatus.SUCCEEDED for e in completed)
