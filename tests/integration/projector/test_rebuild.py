"""A rebuild gives the same view in one process or several, whatever the records' keys, and skips poison."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import DeadLetterReason, JobDeadLettered
from jobrelay.messaging.clients import EventProducer
from jobrelay.projector.rebuild import rebuild
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store import JobRow, SqliteStore
from tests.integration.projector.conftest import life

pytestmark = [pytest.mark.kafka]

JOBS = 60


async def _view(settings: ProjectorSettings, kafka: KafkaSettings, topics: TopicSettings) -> tuple[list[JobRow], int]:
    report = await rebuild(settings, kafka, topics, swap=False)
    store = await SqliteStore.open(report.generation)
    try:
        return await store.all_rows(), report.records
    finally:
        await store.close()


async def test_workers_fold_every_job_once_even_when_keys_are_not_job_ids(
    kafka_settings: KafkaSettings, topics: TopicSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    lives = [life() for _ in range(JOBS)]
    sent = 0
    for job, events in enumerate(lives):
        for n, event in enumerate(events):
            # Every other job's completion is keyed by something else: its worker is not the job's.
            key = uuid.uuid4().bytes if n == 3 and job % 2 else None
            await publisher.publish(event, key=key)
            sent += 1
    no_job = JobDeadLettered(
        stage="t", reason=DeadLetterReason.OTHER, source_topic="x", source_partition=0, source_offset=0
    )
    await publisher.producer.send_and_wait(topics.completed, b"\x00not avro", key=b"k")
    await publisher.publish(no_job, key=b"no job")  # read, counted, but about no job
    sent += 2

    one, parallel, chunked, chunked_here = await asyncio.gather(
        _view(ProjectorSettings(db_path=tmp_path / "one.sqlite", rebuild_workers=1), kafka_settings, topics),
        _view(ProjectorSettings(db_path=tmp_path / "three.sqlite", rebuild_workers=3), kafka_settings, topics),
        _view(  # jobs written out every few jobs: later events fold onto the stored rows
            ProjectorSettings(db_path=tmp_path / "chunks.sqlite", rebuild_workers=2, rebuild_max_jobs=8),
            kafka_settings,
            topics,
        ),
        _view(
            ProjectorSettings(db_path=tmp_path / "chunks1.sqlite", rebuild_workers=1, rebuild_max_jobs=8),
            kafka_settings,
            topics,
        ),
    )
    # The change counter depends on write boundaries (a stray event is folded in a later write).
    for other in (parallel, chunked, chunked_here):
        assert [(r.state, r.applied) for r in one[0]] == [(r.state, r.applied) for r in other[0]]
        assert one[1] == other[1]
    rows, records = one
    assert records == sent, "every record read, the undecodable one included"
    assert len(rows) == JOBS and {r.state.status.value for r in rows} == {"SUCCEEDED"}
    assert {r.applied for r in rows} == {4}, "each event applied exactly once"
