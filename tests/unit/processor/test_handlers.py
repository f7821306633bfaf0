"""Registering handlers, settings, backoff and admission decisions: no broker needed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from jobrelay.jobs.events import DeadLetterReason, JobCompleted, JobDeadLettered, JobRequested, TerminalStatus, utcnow
from jobrelay.jobs.sequence import terminal_sequence
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.loop import Received
from jobrelay.processor.admission import admit
from jobrelay.processor.handlers import Job, PermanentError, Progress, Registry, handler, load_registry
from jobrelay.processor.runner import backoff
from jobrelay.processor.settings import ProcessorSettings


def test_the_demo_module_registers_its_three_handlers() -> None:
    assert load_registry(["jobrelay.processor.demo"]).types() == ["demo.echo", "demo.fail", "demo.sleep"]


def test_two_handlers_for_one_type_are_refused() -> None:
    async def one(job: Job, progress: Progress) -> None: ...
    async def two(job: Job, progress: Progress) -> None: ...

    registry = Registry({"x": one})
    with pytest.raises(ValueError, match="two handlers"):
        registry.add("x", two)


def test_a_job_type_must_be_a_plain_dotted_name() -> None:
    with pytest.raises(ValueError, match="invalid job type"):
        handler("has space")


def test_handler_modules_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_PROCESSOR_HANDLER_MODULES", "a.b, c.d")
    assert ProcessorSettings().handler_modules == ("a.b", "c.d")


def test_limits_that_could_overflow_the_commit_metadata_are_refused() -> None:
    with pytest.raises(ValidationError, match="commit metadata"):
        ProcessorSettings(max_window=20_000, max_pending_per_partition=150)


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    delays = [backoff(attempt, 1.0, 5.0) for attempt in (1, 2, 3, 4) for _ in range(50)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert max(backoff(1, 1.0, 5.0) for _ in range(50)) <= 1.0


def _received(event: Any, key: bytes | None = None) -> Received:
    job_id = getattr(event, "job_id", None)
    key = key if key is not None else (job_id.encode() if job_id else None)
    value = AvroCodec().encode(event)
    record = ConsumerRecord("t.job-requested", 1, 7, 0, 0, key, value, None, 0, len(value), [("h", b"v")])
    return Received(event, "t.job-requested", 1, 7, key, (("h", b"v"),), 0, value=value, record=record)


def _job(**fields: Any) -> JobRequested:
    values: dict[str, Any] = {
        "job_id": str(uuid.uuid4()),
        "job_type": "demo.echo",
        "payload": '{"a": 1}',
        "request_hash": "h1",
    }
    return JobRequested(**(values | fields))


REGISTRY = load_registry(["jobrelay.processor.demo"])


def test_a_known_type_with_a_json_payload_runs() -> None:
    verdict = admit(_received(_job()), finished=False, seen={}, registry=REGISTRY)
    assert verdict.verdict == "run" and verdict.payload == {"a": 1} and verdict.handler is not None


def test_a_repeated_request_is_ignored_and_a_different_one_dead_lettered() -> None:
    job = _job()
    assert admit(_received(job), finished=False, seen={job.job_id: "h1"}, registry=REGISTRY).verdict == "duplicate"
    conflict = admit(_received(job), finished=False, seen={job.job_id: "other"}, registry=REGISTRY)
    (letter,) = conflict.events
    assert isinstance(letter, JobDeadLettered) and letter.reason is DeadLetterReason.INVALID
    assert letter.sequence == 0 and "idempotency conflict" in letter.error_message


def test_unknown_types_and_bad_payloads_fail_with_a_dead_letter() -> None:
    for job, code, reason in [
        (_job(job_type="nope"), "unknown_type", DeadLetterReason.UNKNOWN_TYPE),
        (_job(payload="{"), "invalid_payload", DeadLetterReason.INVALID),
    ]:
        done, letter = admit(_received(job), finished=False, seen={}, registry=REGISTRY).events
        assert isinstance(done, JobCompleted) and done.status is TerminalStatus.FAILED
        assert done.error is not None and done.error.code == code and done.request_hash == "h1"
        assert isinstance(letter, JobDeadLettered) and letter.reason is reason
        assert letter.sequence == terminal_sequence(1) and letter.source_offset == 7
        assert letter.original_value == AvroCodec().encode(job)


def test_a_record_not_keyed_by_its_job_id_is_dead_lettered() -> None:
    (letter,) = admit(_received(_job(), key=b"other"), finished=False, seen={}, registry=REGISTRY).events
    assert isinstance(letter, JobDeadLettered) and "key is not the job id" in letter.error_message


def test_a_record_finished_before_a_restart_is_skipped() -> None:
    assert admit(_received(_job()), finished=True, seen={}, registry=REGISTRY).verdict == "finished"


async def test_demo_fail_fails_until_the_given_attempt() -> None:
    from jobrelay.processor import demo

    async def progress(percent: float | None = None, message: str | None = None) -> None: ...

    job = Job(id="j", type="demo.fail", payload={"fail_attempts": 1}, attempt=2, max_attempts=3, deadline=utcnow())
    assert await demo.fail(job, progress) == {"succeeded_on_attempt": 2}
    assert json.dumps(await demo.echo(job, progress)) == '{"fail_attempts": 1}'


def test_a_processor_with_default_settings_registers_no_demo_handler() -> None:
    assert ProcessorSettings().handler_modules == ()
    assert load_registry(ProcessorSettings().handler_modules).types() == []


async def _no_progress(percent: float | None = None, message: str | None = None) -> None:
    return None


def _sleep_job(payload: dict[str, Any]) -> Job:
    return Job(id="j-1", type="demo.sleep", payload=payload, attempt=1, max_attempts=3, deadline=utcnow())


async def test_demo_sleep_records_only_inside_the_allowed_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobrelay.processor import demo

    outside = tmp_path / "elsewhere.txt"
    monkeypatch.setenv("JOBRELAY_DEMO_RECORD_DIR", str(tmp_path / "allowed"))
    (tmp_path / "allowed").mkdir()
    for target in (str(outside), "../elsewhere.txt", "/etc/passwd"):
        with pytest.raises(PermanentError, match="inside"):
            await demo.sleep(_sleep_job({"seconds": 0, "record": target}), _no_progress)
    assert not outside.exists()
    await demo.sleep(_sleep_job({"seconds": 0, "record": "ran.txt"}), _no_progress)
    assert (tmp_path / "allowed" / "ran.txt").read_text() == "j-1 1\n"
    monkeypatch.delenv("JOBRELAY_DEMO_RECORD_DIR")
    with pytest.raises(PermanentError, match="off"):
        await demo.sleep(_sleep_job({"seconds": 0, "record": "ran.txt"}), _no_progress)
