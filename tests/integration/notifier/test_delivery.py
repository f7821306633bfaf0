"""Deliveries end to end: real broker, real SQLite, a real receiver verifying with `standardwebhooks`."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import DeadLetterReason, JobError, JobProgress, ProgressKind, TerminalStatus
from jobrelay.messaging.codec import AvroCodec
from jobrelay.notifier.main import Notifier
from jobrelay.notifier.settings import NotifierSettings, Subscription
from jobrelay.notifier.store import DeliveryState
from tests.integration.kafkautil import read_all
from tests.integration.notifier.conftest import (
    SECRET_A,
    SECRET_B,
    StartNotifier,
    completed,
    dead_letters,
    publish,
    send_raw,
    states,
    wait_until,
)
from tests.integration.notifier.receiver import HANG, Receiver, serving

pytestmark = pytest.mark.kafka


async def test_each_completion_is_delivered_once_signed_and_in_the_jobs_trace(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
    spans: InMemorySpanExporter,
) -> None:
    succeeded = completed(f"{receiver.base}/hooks/jobs?token=t1")
    failed = completed(
        f"{receiver.base}/hooks/jobs",
        status=TerminalStatus.FAILED,
        result=None,
        error=JobError("upstream_timeout", "the upstream did not answer"),
    )
    cancelled = completed(f"{receiver.base}/hooks/jobs", status=TerminalStatus.CANCELLED, result=None)
    silent = completed(None)  # no callback URL, no subscription: nothing to deliver
    # The first JobCompleted arrives twice, as after a producer retry or a replay: one delivery only.
    await publish(kafka_settings, topics, succeeded, failed, succeeded, cancelled, silent)
    stray = JobProgress(job_id=silent.job_id, job_type="t", sequence=1, kind=ProgressKind.STARTED)
    await send_raw(kafka_settings, topics.completed, AvroCodec().encode(stray))  # a producer's mistake
    notifier = await start_notifier(notifier_settings)

    async def all_consumed_and_delivered() -> bool:
        consumed = sum((await notifier.store.offsets()).values())
        return consumed == 6 and (await notifier.store.counts()).get(DeliveryState.DELIVERED) == 3

    await wait_until(all_consumed_and_delivered, "6 records consumed and 3 deliveries made")
    (letter,) = await dead_letters(kafka_settings, topics, expect=1)
    assert (letter.reason, letter.job_id) == (DeadLetterReason.UNKNOWN_TYPE, silent.job_id), "set aside, not lost"

    got = receiver.at("/hooks/jobs")
    assert sorted(d.webhook_id for d in got) == sorted(e.event_id for e in (succeeded, failed, cancelled))
    assert all(d.verified_with == (SECRET_A, SECRET_B) for d in got), "each rotation secret verifies alone"
    by_id = {d.webhook_id: d for d in got}
    body = by_id[succeeded.event_id].payload
    assert body["type"] == "job.completed"
    assert body["timestamp"] == succeeded.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert body["data"] == {
        "id": succeeded.job_id,
        "type": "report.generate",
        "status": "succeeded",
        "result": {"rows": 3},
        "attempts": 1,
        "created_at": None,  # JobCompleted v1 writers did not say (v2 copies it from the request)
        "started_at": None,
        "completed_at": body["timestamp"],
        "expires_at": None,
        "retain_until": (succeeded.occurred_at + timedelta(seconds=notifier_settings.result_retention_s))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "links": {
            "status": f"https://jobs.example.test/v1/jobs/{succeeded.job_id}",
            "result": f"https://jobs.example.test/v1/jobs/{succeeded.job_id}/result",
        },
    }
    failure = by_id[failed.event_id].payload["data"]
    assert (failure["status"], failure["error"]) == (
        "failed",
        {"code": "upstream_timeout", "message": "the upstream did not answer"},
    )
    assert "result" not in failure
    assert by_id[cancelled.event_id].payload["data"]["status"] == "cancelled"
    assert by_id[cancelled.event_id].payload["type"] == "job.cancelled"
    request = by_id[succeeded.event_id].headers
    assert request["content-type"] == "application/json"
    assert "jobrelay" in request["user-agent"]
    assert request["host"] == f"127.0.0.1:{receiver.port}"
    send_spans = [
        s
        for s in spans.get_finished_spans()
        if s.name == f"send {topics.completed}"
        and s.attributes
        and s.attributes.get("jobrelay.job_id") == succeeded.job_id
    ]
    trace_id = request["traceparent"].split("-")[1]
    assert trace_id in {f"{s.context.trace_id:032x}" for s in send_spans}, "the webhook continues the job's trace"


async def test_a_receiver_failing_twice_then_succeeding_sees_the_same_webhook_id_three_times(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    receiver.scripts["/flaky"] = [500, (429, {"retry-after": "0"}), 204]
    job = completed(f"{receiver.base}/flaky")
    await publish(kafka_settings, topics, job)
    notifier = await start_notifier(notifier_settings)

    async def delivered() -> bool:
        return (await states(notifier)).get(job.callback_url or "", (None,))[0] is DeliveryState.DELIVERED

    await wait_until(delivered, "the flaky receiver accepted the delivery")
    got = receiver.at("/flaky")
    assert [d.status for d in got] == [500, 429, 204]
    assert {d.webhook_id for d in got} == {job.event_id}
    assert len({d.headers["webhook-timestamp"] for d in got}) >= 1 and all(d.verified_with for d in got)
    assert len({d.body for d in got}) == 1, "every retry sends the same body"
    assert (await states(notifier))[job.callback_url or ""] == (DeliveryState.DELIVERED, 3, 204)
    assert await dead_letters(kafka_settings, topics, expect=0) == []


async def test_a_410_disables_the_url_for_good(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    receiver.scripts["/gone"] = [410]
    first, second = completed(f"{receiver.base}/gone"), completed(f"{receiver.base}/gone")
    await publish(kafka_settings, topics, first)
    notifier = await start_notifier(notifier_settings)
    letters = await dead_letters(kafka_settings, topics, expect=1)
    await publish(kafka_settings, topics, second)
    letters = await dead_letters(kafka_settings, topics, expect=2)

    assert len(receiver.at("/gone")) == 1, "a URL that answered 410 is never called again"
    by_job = {letter.job_id: letter for letter in letters}
    assert (by_job[first.job_id].last_status, by_job[first.job_id].attempts) == (410, 1)
    assert (by_job[second.job_id].last_status, by_job[second.job_id].attempts) == (None, 0)
    assert "disabled" in by_job[second.job_id].error_message
    assert await notifier.store.counts() == {DeliveryState.GONE: 1, DeliveryState.DISABLED: 1}


async def test_a_receiver_that_never_answers_is_retried_then_dead_lettered_with_the_record(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    receiver.scripts["/hang"] = [HANG]
    receiver.scripts["/moved"] = [(302, {"location": f"{receiver.base}/elsewhere"})]
    hanging, moved = completed(f"{receiver.base}/hang"), completed(f"{receiver.base}/moved")
    await publish(kafka_settings, topics, hanging, moved)
    await start_notifier(notifier_settings.model_copy(update={"request_timeout": 0.5}))
    letters = {x.job_id: x for x in await dead_letters(kafka_settings, topics, expect=2)}

    assert [d.webhook_id for d in receiver.at("/hang")] == [hanging.event_id] * 3
    letter = letters[hanging.job_id]
    assert (letter.stage, letter.reason, letter.attempts, letter.last_status) == (
        "notifier",
        DeadLetterReason.WEBHOOK_UNDELIVERABLE,
        3,
        None,
    )
    assert "no answer within 0.5s" in letter.error_message
    (record,) = [r for r in await read_all(kafka_settings, topics.completed) if r.key == hanging.job_id.encode()]
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        record.topic,
        record.partition,
        record.offset,
    )
    assert letter.original_value == record.value, "the dead letter carries the JobCompleted bytes for a replay"
    assert AvroCodec().decode(letter.original_value or b"") == hanging
    assert len(receiver.at("/moved")) == 3 and receiver.at("/elsewhere") == [], "redirects are never followed"
    assert (letters[moved.job_id].last_status, letters[moved.job_id].attempts) == (302, 3)


async def test_a_slow_receiver_cannot_stall_the_others(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    async with serving(Receiver([SECRET_A])) as slow:
        slow.scripts["/slow"] = [HANG]
        slow_jobs = [completed(f"{slow.base}/slow") for _ in range(6)]
        fast_jobs = [completed(f"{receiver.base}/fast") for _ in range(4)]
        await publish(kafka_settings, topics, *slow_jobs, *fast_jobs)
        settings = notifier_settings.model_copy(
            update={"max_concurrency": 4, "per_host_concurrency": 2, "request_timeout": 60.0}
        )
        notifier = await start_notifier(settings)

        async def fast_all_delivered() -> bool:
            return len(receiver.at("/fast")) == 4 and slow.in_progress == 2

        await wait_until(fast_all_delivered, "every fast delivery made while the slow receiver hangs on 2")
        assert slow.max_in_progress == 2, "the per-host limit holds"
        slow.release.set()  # the slow receiver answers at last: its deliveries drain too
        await wait_until(lambda: _delivered(notifier, 10), "all ten deliveries made once the slow receiver answers")
        assert len(slow.at("/slow")) == 6


async def _delivered(notifier: Notifier, n: int) -> bool:
    return (await notifier.store.counts()).get(DeliveryState.DELIVERED) == n


async def test_subscriptions_receive_every_completion_of_their_job_types(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    own = "whsec_" + base64.b64encode(b"S" * 32).decode()
    receiver.secrets = [SECRET_A, SECRET_B, own]
    subscriptions = [
        Subscription(
            name="reports", url=f"{receiver.base}/reports", job_types=("report.generate",), secrets=(SecretStr(own),)
        ),
        Subscription(url=f"{receiver.base}/everything", job_types=("*",)),
    ]
    report = completed(f"{receiver.base}/callback")
    other = completed(None, job_type="image.resize")
    await publish(kafka_settings, topics, report, other)
    notifier = await start_notifier(notifier_settings.model_copy(update={"subscriptions": tuple(subscriptions)}))
    await wait_until(lambda: _delivered(notifier, 4), "the callback and three subscription deliveries made")

    assert [d.webhook_id for d in receiver.at("/callback")] == [report.event_id]
    (to_reports,) = receiver.at("/reports")
    assert (to_reports.webhook_id, to_reports.verified_with) == (report.event_id, (own,)), "its own secret only"
    everything = receiver.at("/everything")
    assert sorted(d.webhook_id for d in everything) == sorted([report.event_id, other.event_id])
    assert all(d.verified_with == (SECRET_A, SECRET_B) for d in everything), "default secrets when it has none"
