"""The SDK subscriber against the real broker: every outcome once per group, filters, poison, errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter

import pytest
from aiokafka import TopicPartition

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, JobProgress, TerminalStatus
from jobrelay.messaging.clients import make_producer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import event_headers
from jobrelay.sdk import Delivered, Poison, Subscriber
from tests.integration.sdk.outcomes import committed_offsets, outcome, publish, send_raw, started

pytestmark = pytest.mark.kafka
DEADLINE = 60.0
STATUSES = list(TerminalStatus)


def _group() -> str:
    return f"downstream-{uuid.uuid4().hex[:8]}"


async def test_every_outcome_once_per_group_and_nothing_of_an_aborted_transaction(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    jobs = [outcome(f"type.{i % 3}", STATUSES[i % 4]) for i in range(50)]
    rolled_back = [outcome("type.0") for _ in range(5)]
    await publish(kafka_settings, topics, jobs, aborted=rolled_back)
    seen_sync: list[Delivered] = []
    seen_async: list[Delivered] = []

    async def async_handler(item: Delivered) -> None:
        seen_async.append(item)

    groups = _group(), _group()
    subscribers = [
        Subscriber(seen_sync.append, group_id=groups[0], kafka=kafka_settings, topics=topics, max_records=7),
        Subscriber(async_handler, group_id=groups[1], kafka=kafka_settings, topics=topics),
    ]
    await asyncio.gather(*(s.run_async(count=50, timeout=DEADLINE) for s in subscribers))

    wanted = {job.job_id: job for job in jobs}
    for seen in (seen_sync, seen_async):
        assert Counter(item.job_id for item in seen) == Counter(list(wanted)), "each outcome exactly once"
        assert all(item.event == wanted[item.job_id] for item in seen), "decoded as written"
        assert all(item.key == item.job_id.encode() for item in seen)
        assert all(item.header("ce_type") == "jobrelay.job.completed.v1" for item in seen)
    committed = await committed_offsets(kafka_settings, groups[0])
    assert sum(committed.values()) >= 50 and set(committed) == {TopicPartition(topics.completed, p) for p in range(3)}

    late = outcome("type.late")
    await publish(kafka_settings, topics, [late])
    again: list[Delivered] = []
    resumed = Subscriber(again.append, group_id=groups[0], kafka=kafka_settings, topics=topics)
    await resumed.run_async(count=1, timeout=DEADLINE)
    assert [item.job_id for item in again] == [late.job_id], "a restarted group resumes after what it handled"


async def test_filters_by_type_pattern_and_status_and_progress_on_request(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    jobs = [
        outcome(job_type, status)
        for job_type in ("report.daily", "report.monthly", "image.resize")
        for status in (TerminalStatus.SUCCEEDED, TerminalStatus.FAILED, TerminalStatus.EXPIRED)
    ]
    progress = [started("report.daily"), started("image.resize")]
    await publish(kafka_settings, topics, [*jobs, *progress])
    picked: list[Delivered] = []
    subscriber = Subscriber(
        picked.append,
        group_id=_group(),
        types=["report.*"],
        statuses=["failed", "EXPIRED"],
        progress=True,
        kafka=kafka_settings,
        topics=topics,
    )
    read = await subscriber.run_async(count=len(jobs) + len(progress), timeout=DEADLINE)

    assert read == len(jobs) + len(progress)
    outcomes = sorted((e.job_type, e.status) for i in picked if isinstance(e := i.event, JobCompleted))
    assert outcomes == sorted(
        (job_type, status)
        for job_type in ("report.daily", "report.monthly")
        for status in (TerminalStatus.FAILED, TerminalStatus.EXPIRED)
    )
    assert [i.job_id for i in picked if isinstance(i.event, JobProgress)] == [progress[0].job_id]
    with pytest.raises(ValueError, match="RUNNING"):
        Subscriber(picked.append, group_id=None, statuses=["RUNNING"], kafka=kafka_settings, topics=topics)


async def _to_partition_zero(kafka: KafkaSettings, topic: str, events: list[JobCompleted]) -> None:
    codec, producer = AvroCodec(), make_producer(kafka, "test-p0")
    await producer.start()
    try:
        for event in events:
            headers = event_headers(event, "/jobrelay/processor")
            await producer.send_and_wait(
                topic, codec.encode(event), key=event.job_id.encode(), partition=0, headers=headers
            )
    finally:
        await producer.stop()


async def test_a_poison_record_is_reported_and_skipped_and_the_partition_goes_on(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    before, after = [outcome() for _ in range(3)], [outcome() for _ in range(3)]
    await _to_partition_zero(kafka_settings, topics.completed, before)
    garbage = os.urandom(64)
    poison_offset = await send_raw(kafka_settings, topics.completed, garbage, partition=0)
    await _to_partition_zero(kafka_settings, topics.completed, after)
    handled: list[str] = []
    reported: list[Poison] = []

    async def report(poison: Poison) -> None:
        reported.append(poison)

    group = _group()
    subscriber = Subscriber(
        lambda item: handled.append(item.job_id),
        group_id=group,
        on_poison=report,
        kafka=kafka_settings,
        topics=topics,
    )
    await subscriber.run_async(count=7, timeout=DEADLINE)

    assert handled == [job.job_id for job in before + after], "the records after the poison are handled, in order"
    (poison,) = reported
    assert (poison.topic, poison.partition, poison.offset) == (topics.completed, 0, poison_offset)
    assert (poison.key, poison.value) == (b"garbage", garbage) and "C3 01" in poison.error

    late = outcome()
    await _to_partition_zero(kafka_settings, topics.completed, [late])
    handled.clear()
    await Subscriber(
        lambda item: handled.append(item.job_id),
        group_id=group,
        on_poison=report,
        kafka=kafka_settings,
        topics=topics,
    ).run_async(count=1, timeout=DEADLINE)
    assert handled == [late.job_id] and len(reported) == 1, "committed past the poison: not reported again"


class Boom(Exception):
    """The downstream system the handler writes to is down."""


async def test_a_failing_handler_stops_the_subscriber_and_its_record_comes_again(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    jobs = [outcome() for _ in range(5)]
    await _to_partition_zero(kafka_settings, topics.completed, jobs)
    handled: list[str] = []

    def fail_on_the_third(item: Delivered) -> None:
        if item.job_id == jobs[2].job_id:
            raise Boom(item.job_id)
        handled.append(item.job_id)

    group = _group()
    with pytest.raises(Boom):
        await Subscriber(fail_on_the_third, group_id=group, kafka=kafka_settings, topics=topics).run_async(
            count=5, timeout=DEADLINE
        )
    assert handled == [jobs[0].job_id, jobs[1].job_id]
    assert (await committed_offsets(kafka_settings, group))[TopicPartition(topics.completed, 0)] == 2

    handled.clear()
    await Subscriber(
        lambda item: handled.append(item.job_id), group_id=group, kafka=kafka_settings, topics=topics
    ).run_async(count=3, timeout=DEADLINE)
    assert handled == [job.job_id for job in jobs[2:]], "the failed record first, nothing handled before it"


@pytest.mark.slow
async def test_two_members_of_one_group_share_the_outcomes_without_repeats(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    jobs = [outcome() for _ in range(60)]
    await publish(kafka_settings, topics, jobs)
    handled: dict[str, list[str]] = {"first": [], "second": []}
    under_way, all_handled = asyncio.Event(), asyncio.Event()

    def member(name: str) -> Subscriber:
        async def slow(item: Delivered) -> None:
            # the downstream work: the first member slow enough (60 x 0.3 s) that the second joins
            # (a heartbeat, ~3 s, longer on a busy machine) well before it could finish alone
            await asyncio.sleep(0.3 if name == "first" else 0.05)
            handled[name].append(item.job_id)
            if len(handled["first"]) >= 10:
                under_way.set()
            if len(handled["first"]) + len(handled["second"]) >= len(jobs):
                all_handled.set()

        return Subscriber(slow, group_id=group, max_records=5, kafka=kafka_settings, topics=topics)

    group = _group()
    first, second = member("first"), member("second")
    running = [asyncio.create_task(first.run_async(timeout=DEADLINE))]
    await asyncio.wait_for(under_way.wait(), DEADLINE)
    running.append(asyncio.create_task(second.run_async(timeout=DEADLINE)))
    with contextlib.suppress(TimeoutError):  # the assertions below say what was missing
        await asyncio.wait_for(all_handled.wait(), DEADLINE)
    first.stop()
    second.stop()
    await asyncio.gather(*running)

    everything = handled["first"] + handled["second"]
    assert Counter(everything) == Counter(job.job_id for job in jobs), "each outcome once across the rebalance"
    assert handled["second"], "the second member took partitions over"
