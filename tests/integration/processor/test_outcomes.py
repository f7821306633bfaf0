"""Each kind of job and each kind of bad input gives the documented events, and nothing else."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import (
    DeadLetterReason,
    JobCompleted,
    JobDeadLettered,
    JobProgress,
    ProgressKind,
    TerminalStatus,
    new_event_id,
    utcnow,
)
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import header
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.kafkautil import read_all
from tests.integration.processor.conftest import (
    events,
    processor,
    publisher,
    request,
    run_until_completed,
)

pytestmark = pytest.mark.kafka


async def test_a_job_succeeds_with_its_result_progress_and_one_trace(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("demo.sleep", {"seconds": 0.8, "steps": 2}, callback_url="https://example.com/hook")
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted)
    assert done.status is TerminalStatus.SUCCEEDED and done.attempt == 1
    assert json.loads(done.result or "") == {"slept": 0.8, "attempt": 1}
    assert (done.callback_url, done.request_hash) == (job.callback_url, job.request_hash)
    assert done.sequence == terminal_sequence(1) and done.started_at is not None
    progress = [e for e in out["progress"] if isinstance(e, JobProgress)]
    kinds = [e.kind for e in progress]
    assert kinds[0] is ProgressKind.STARTED and kinds.count(ProgressKind.PROGRESS) == 2
    assert ProgressKind.HEARTBEAT in kinds, "a job longer than the heartbeat interval sends heartbeats"
    assert [e.sequence for e in progress] == [sequence(1, n) for n in range(1, len(progress) + 1)]
    assert [e.percent for e in progress if e.kind is ProgressKind.PROGRESS] == [50.0, 100.0]
    assert out["dlq"] == []
    records = await read_all(kafka_settings, topics.requested) + await read_all(kafka_settings, topics.completed)
    traces = {(header(r.headers, "traceparent") or "").split("-")[1] for r in records}
    assert len(traces) == 1, "the request and its outcome are one trace"


async def test_a_job_that_ends_before_its_start_is_committed_has_one_record_its_outcome(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    quick, slow = request("demo.echo", {"n": 1}), request("demo.sleep", {"seconds": 1})
    out = await run_until_completed(kafka_settings, topics, processor_settings, [quick, slow])
    outcome = {e.job_id: e for e in out["completed"] if isinstance(e, JobCompleted)}
    assert outcome[quick.job_id].started_at is not None and outcome[quick.job_id].attempt == 1
    started = {e.job_id for e in out["progress"] if isinstance(e, JobProgress) and e.kind is ProgressKind.STARTED}
    assert quick.job_id not in started, "its STARTED is folded into the outcome (no reader could see it running)"
    assert slow.job_id in started, "a job still running when the next transaction is made is seen starting"
    records = await read_all(kafka_settings, topics.requested) + await read_all(kafka_settings, topics.completed)
    quick_traces = {
        (header(r.headers, "traceparent") or "").split("-")[1] for r in records if r.key == quick.job_id.encode()
    }
    assert len(quick_traces) == 1, "the request and its outcome are still one trace"


async def test_retryable_failures_retry_with_backoff_then_succeed(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("demo.fail", {"fail_attempts": 2}, max_attempts=3)
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted)
    assert done.status is TerminalStatus.SUCCEEDED and done.attempt == 3
    assert json.loads(done.result or "") == {"succeeded_on_attempt": 3}
    retries = [e for e in out["progress"] if isinstance(e, JobProgress) and e.kind is ProgressKind.RETRY_SCHEDULED]
    assert [r.attempt for r in retries] == [1, 2]
    assert all(r.retry_at is not None and r.retry_at >= r.occurred_at for r in retries)
    assert "demo failure on attempt 1" in (retries[0].message or "")
    sequences = [e.sequence for e in [*out["progress"], done]]
    assert sequences == sorted(sequences), "later attempts sort after earlier ones"
    assert out["dlq"] == []


async def test_a_non_retryable_failure_fails_at_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("demo.fail", {"retryable": False, "message": "bad input"}, max_attempts=5)
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted) and done.status is TerminalStatus.FAILED and done.attempt == 1
    assert done.error is not None and (done.error.code, done.error.message) == ("handler_error", "bad input")
    assert not any(isinstance(e, JobProgress) and e.kind is ProgressKind.RETRY_SCHEDULED for e in out["progress"])
    assert out["dlq"] == [], "a handler's own verdict is a normal failure, not a dead letter"


async def test_timeouts_are_retried_and_exhaustion_is_dead_lettered(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("demo.sleep", {"seconds": 30}, timeout_s=0.3, max_attempts=2)
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted) and done.status is TerminalStatus.FAILED and done.attempt == 2
    assert done.error is not None and done.error.code == "retries_exhausted"
    assert "timeout" in done.error.message
    (retry,) = [e for e in out["progress"] if isinstance(e, JobProgress) and e.kind is ProgressKind.RETRY_SCHEDULED]
    assert retry.attempt == 1 and "0.3s timeout" in (retry.message or "")
    (letter,) = out["dlq"]
    assert isinstance(letter, JobDeadLettered)
    assert letter.reason is DeadLetterReason.RETRIES_EXHAUSTED and letter.stage == "processor"
    assert (letter.job_id, letter.attempts, letter.sequence) == (job.job_id, 2, terminal_sequence(2))
    (original,) = await read_all(kafka_settings, topics.requested)
    assert letter.original_value == original.value, "the dead letter carries the request's original bytes"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        topics.requested,
        original.partition,
        original.offset,
    )


async def test_an_expired_job_is_not_run(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("demo.echo", {}, expires_at=utcnow() - timedelta(seconds=1))
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted) and done.status is TerminalStatus.EXPIRED
    assert done.error is not None and done.error.code == "expired" and done.started_at is None
    assert out["progress"] == [], "never started"
    assert out["dlq"] == []


async def test_an_unknown_type_fails_and_is_dead_lettered(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    job = request("no.such.type", {"x": 1})
    out = await run_until_completed(kafka_settings, topics, processor_settings, [job])
    (done,) = out["completed"]
    assert isinstance(done, JobCompleted) and done.status is TerminalStatus.FAILED
    assert done.error is not None and done.error.code == "unknown_type" and "no.such.type" in done.error.message
    (letter,) = out["dlq"]
    assert isinstance(letter, JobDeadLettered) and letter.reason is DeadLetterReason.UNKNOWN_TYPE
    assert (letter.job_id, letter.job_type, letter.sequence) == (job.job_id, "no.such.type", terminal_sequence(1))
    assert AvroCodec().decode(letter.original_value or b"") == job, "replayable from the dead letter"
    assert out["progress"] == []


async def test_bad_records_are_dead_lettered_and_never_block_the_partition(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    good = request("demo.echo", {"ok": True})
    not_json = replace(request("demo.echo"), payload="{not json")
    key = good.job_id.encode()
    async with publisher(kafka_settings, topics) as pub:
        # Poison and a record keyed by another id, then a good job on the same partition; a non-JSON payload.
        at = await pub.producer.send_and_wait(topics.requested, b"\x00garbage", key=key, headers=[("origin", b"fuzz")])
        await pub.publish(request("demo.echo", {}), key=key)
        await pub.publish(not_json)
        await pub.publish(good)
    async with processor(kafka_settings, topics, processor_settings):
        completed = await events(kafka_settings, topics.completed, expect=2)
    outcome = {e.job_id: e for e in completed if isinstance(e, JobCompleted)}
    assert outcome[good.job_id].status is TerminalStatus.SUCCEEDED, "what follows the bad records still runs"
    assert outcome[not_json.job_id].error is not None
    assert outcome[not_json.job_id].error.code == "invalid_payload"  # type: ignore[union-attr]
    letters = [e for e in await events(kafka_settings, topics.dlq) if isinstance(e, JobDeadLettered)]
    # In the order of the requests they stand for (the letters of two partitions interleave freely).
    letters.sort(key=lambda letter: (letter.source_partition != at.partition, letter.source_offset))
    assert [letter.reason for letter in letters] == [
        DeadLetterReason.UNDECODABLE,
        DeadLetterReason.INVALID,
        DeadLetterReason.INVALID,
    ]
    poison = letters[0]
    assert poison.original_value == b"\x00garbage" and [(h.key, h.value) for h in poison.original_headers] == [
        ("origin", b"fuzz")
    ]
    assert "record key is not the job id" in letters[1].error_message
    assert letters[2].job_id == not_json.job_id


async def test_duplicate_requests_are_never_run_twice(
    kafka_settings: KafkaSettings, topics: TopicSettings, processor_settings: ProcessorSettings
) -> None:
    first = request("demo.echo", {"v": 1})
    again = replace(first, event_id=new_event_id())  # a retried POST: same job id, same request
    other = replace(first, event_id=new_event_id(), payload='{"v": 2}', request_hash="another")
    await run_until_completed(kafka_settings, topics, processor_settings, [first, again], expect=1)
    # After a restart too: the processor remembers finished jobs from job-completed.
    async with publisher(kafka_settings, topics) as pub:
        await pub.publish(again)
        await pub.publish(other)
    async with processor(kafka_settings, topics, processor_settings):
        letters = await events(kafka_settings, topics.dlq, expect=1)
    completed = [e for e in await events(kafka_settings, topics.completed) if isinstance(e, JobCompleted)]
    assert [(e.job_id, e.request_hash) for e in completed] == [(first.job_id, first.request_hash)]
    assert json.loads(completed[0].result or "") == {"v": 1}
    (letter,) = letters
    assert isinstance(letter, JobDeadLettered) and letter.reason is DeadLetterReason.INVALID
    assert "idempotency conflict" in letter.error_message and letter.sequence == 0, "the first job is untouched"
    assert AvroCodec().decode(letter.original_value or b"") == other
