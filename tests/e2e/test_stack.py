"""End to end: a job through intake → processor → projector → notifier, as a user sees it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from jobrelay.jobs.events import JobCompleted, TerminalStatus
from jobrelay.messaging.codec import AvroCodec
from tests.e2e.conftest import RunningStack
from tests.integration.kafkautil import read_all
from tests.integration.notifier.receiver import Receiver, serving

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def _stream(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every document the job's SSE stream sends, until it ends after the terminal one."""
    docs: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0)) as http,
        aconnect_sse(http, "GET", url, headers=headers) as source,
    ):
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            docs.append(json.loads(event.data))
    return docs


async def _until(condition: Any, deadline: float = 60.0) -> None:
    stop = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < stop, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_job_runs_reports_progress_streams_and_calls_back(running_stack: RunningStack) -> None:
    receiver = Receiver(secrets=[running_stack.stack.signing_secret()])
    async with (
        serving(receiver),
        running_stack.client() as client,
    ):
        accepted = await client.submit("demo.sleep", {"seconds": 2, "steps": 4}, callback_url=f"{receiver.base}/hook")
        assert accepted.status == "accepted"
        assert accepted.links["status"] == f"{running_stack.url('projector')}/v1/jobs/{accepted.id}"
        docs = await _stream(accepted.links["events"], running_stack.auth)
        async with httpx.AsyncClient(headers=running_stack.auth) as http:
            result = await http.get(accepted.links["result"])
        await _until(lambda: len(receiver.at("/hook")) >= 1)

    statuses = [d["status"] for d in docs]
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert any(d["status"] == "running" and 0 < (d.get("progress") or 0) < 100 for d in docs), statuses
    assert result.status_code == 200 and result.json() == {"slept": 2.0, "attempt": 1}

    (webhook,) = receiver.at("/hook")
    assert webhook.verified_with == (running_stack.stack.signing_secret(),), "standardwebhooks verified it"
    assert webhook.payload["data"]["id"] == accepted.id and webhook.payload["data"]["status"] == "succeeded"
    assert webhook.payload["data"]["result"] == {"slept": 2.0, "attempt": 1}

    codec = AvroCodec()
    completed = [codec.decode(r.value) for r in await read_all(running_stack.kafka, running_stack.topics.completed)]
    mine = [e for e in completed if isinstance(e, JobCompleted) and e.job_id == accepted.id]
    assert [e.status for e in mine] == [TerminalStatus.SUCCEEDED], "one outcome, as a downstream consumer sees it"
    assert webhook.webhook_id == mine[0].event_id


def _cli(running_stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **running_stack.env, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "jobrelay.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_a_failed_job_is_dead_lettered_listed_and_replayed(running_stack: RunningStack) -> None:
    async with running_stack.client() as client:
        accepted = await client.submit("demo.fail", {"delay_s": 0.1}, max_attempts=2)
        failed = await client.wait(accepted, timeout=90)
        assert (failed.status, failed.attempts) == ("failed", 2)

        listed = _cli(running_stack, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = [json.loads(line) for line in listed.stdout.splitlines() if line.strip().startswith("{")]
        (letter,) = [entry for entry in letters if entry["job_id"] == accepted.id]
        assert (letter["reason"], letter["stage"], letter["attempts"]) == ("RETRIES_EXHAUSTED", "processor", 2)

        replayed = _cli(running_stack, "dlq", "replay", letter["ref"])
        assert replayed.returncode == 0, replayed.stderr
        new_id = replayed.stdout.strip().rsplit(" ", 1)[-1]
        assert new_id != accepted.id
        again = await client.wait(new_id, timeout=90)
    assert (again.type, again.status, again.attempts) == ("demo.fail", "failed", 2), "the replay ran again"


async def test_one_job_is_one_trace_across_the_four_services(running_stack: RunningStack) -> None:
    receiver = Receiver(secrets=[running_stack.stack.signing_secret()])
    async with (
        serving(receiver),
        running_stack.client() as client,
    ):
        accepted = await client.submit("demo.echo", {"trace": True}, callback_url=f"{receiver.base}/hook")
        await client.wait(accepted, timeout=60)
        await _until(lambda: len(receiver.at("/hook")) >= 1)
    services = {"jobrelay-intake", "jobrelay-processor", "jobrelay-projector", "jobrelay-notifier"}

    def one_trace() -> set[str]:
        spans = running_stack.traces.snapshot()
        traces = {s.trace_id for s in spans if s.attributes.get("jobrelay.job_id") == accepted.id}
        return {s.service for s in spans if s.trace_id in traces} if len(traces) == 1 else set()

    await _until(lambda: one_trace() >= services, deadline=30)
    (trace_id,) = {
        s.trace_id for s in running_stack.traces.snapshot() if s.attributes.get("jobrelay.job_id") == accepted.id
    }
    traceparent = receiver.at("/hook")[0].headers.get("traceparent", "")
    assert traceparent.split("-")[1] == trace_id, "the webhook request continues the job's trace"


def _jaeger_traces(jaeger_url: str, service: str, job_id: str) -> list[dict[str, Any]]:
    """Jaeger's HTTP API: the traces of `service` with a span tagged with the job id."""
    params = {"service": service, "tags": json.dumps({"jobrelay.job_id": job_id}), "lookback": "1h", "limit": "20"}
    response = httpx.get(f"{jaeger_url}/api/traces", params=params, timeout=10)
    response.raise_for_status()
    traces: list[dict[str, Any]] = response.json()["data"] or []
    return traces


async def test_jaeger_finds_the_job_by_its_id_as_one_trace_across_the_four_services(
    running_stack: RunningStack,
) -> None:
    jaeger = running_stack.jaeger
    if jaeger is None:
        pytest.skip("Jaeger is not built and there is no Go toolchain to build it (go >= 1.24 on PATH)")
    receiver = Receiver(secrets=[running_stack.stack.signing_secret()])
    async with (
        serving(receiver),
        running_stack.client() as client,
    ):
        accepted = await client.submit("demo.echo", {"jaeger": True}, callback_url=f"{receiver.base}/hook")
        await client.wait(accepted, timeout=60)
        await _until(lambda: len(receiver.at("/hook")) >= 1)
    topics = running_stack.topics
    expected = {  # (service, span): each arrives in its own export, the webhook's after the receiver answered
        ("jobrelay-intake", f"send {topics.requested}"),
        ("jobrelay-processor", f"process {topics.requested}"),
        ("jobrelay-processor", f"send {topics.completed}"),
        ("jobrelay-projector", f"process {topics.completed}"),
        ("jobrelay-notifier", "POST"),
    }
    services = {service for service, _ in expected}
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def in_jaeger() -> bool:
        found[:] = _jaeger_traces(jaeger.url, "jobrelay-intake", accepted.id)
        seen.clear()
        for trace in found:
            service_of = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
            seen.update((service_of[span["processID"]], span["operationName"]) for span in trace["spans"])
        return len(found) == 1 and seen >= expected

    await _until(in_jaeger, deadline=30)
    assert running_stack.traces.forward_errors == []
    (trace,) = found
    assert {s["traceID"] for s in trace["spans"]} == {trace["traceID"]}, "one trace"
    assert ("jobrelay-notifier", "POST") in seen, "the webhook request is a span of the job's trace"
    # the same trace is found from any service by the job id, as an SRE would search
    for service in services:
        assert [t["traceID"] for t in _jaeger_traces(jaeger.url, service, accepted.id)] == [trace["traceID"]]
