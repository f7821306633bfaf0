"""End to end on the four service processes: cancel with the SDK and the CLI, re-run, and the webhook of a cancel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from jobrelay.jobs.events import JobCompleted, TerminalStatus
from jobrelay.messaging.codec import AvroCodec
from jobrelay.sdk import AsyncJobClient, JobConflict
from tests.e2e.conftest import RunningStack
from tests.e2e.test_stack import _until
from tests.integration.kafkautil import read_all
from tests.integration.notifier.receiver import Receiver, serving

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_a_cancelled_job_calls_back_job_cancelled_signed_and_can_be_re_run(running_stack: RunningStack) -> None:
    receiver = Receiver(secrets=[running_stack.stack.signing_secret()])
    async with (
        serving(receiver),
        running_stack.client() as client,
    ):
        accepted = await client.submit("demo.sleep", {"seconds": 30, "steps": 30}, callback_url=f"{receiver.base}/hook")
        assert accepted.links["cancel"] == accepted.links["status"]
        await _until_running(client, accepted.id)
        taken = await client.cancel(accepted)
        assert taken.cancel_requested_at is not None
        cancelled = await client.wait(accepted, timeout=30)
        assert cancelled.status == "cancelled" and cancelled.completed_at is not None
        with pytest.raises(JobConflict) as refused:
            await client.cancel(accepted.id)
        assert refused.value.job_status == "cancelled"
        await _until(lambda: len(receiver.at("/hook")) >= 1)
        rerun = await client.retry(cancelled)
        assert rerun.id != accepted.id and rerun.links["retry_of"].endswith(accepted.id)

    (webhook,) = receiver.at("/hook")
    assert webhook.verified_with == (running_stack.stack.signing_secret(),), "standardwebhooks verified it"
    assert webhook.payload["type"] == "job.cancelled"
    data = webhook.payload["data"]
    assert data["id"] == accepted.id and data["status"] == "cancelled" and data["error"]["code"] == "cancelled"
    assert data["created_at"] <= data["started_at"] <= data["completed_at"] < data["retain_until"]

    codec = AvroCodec()
    completed = [codec.decode(r.value) for r in await read_all(running_stack.kafka, running_stack.topics.completed)]
    mine = [e for e in completed if isinstance(e, JobCompleted) and e.job_id == accepted.id]
    assert [e.status for e in mine] == [TerminalStatus.CANCELLED], "one outcome, as a downstream consumer sees it"


async def _until_running(client: AsyncJobClient, job_id: str) -> None:
    for _ in range(300):
        view = await client.get(job_id)
        if view.status == "running":
            return
        assert not view.terminal, view
        await asyncio.sleep(0.1)  # the poll interval; the job is running within a few seconds
    raise AssertionError(f"job {job_id} never ran")


def test_the_cli_cancels_a_job_and_says_when_it_is_too_late(running_stack: RunningStack) -> None:
    env = {**os.environ, **running_stack.env, "COLUMNS": "250"}
    urls = ["--intake-url", running_stack.url("intake"), "--status-url", running_stack.url("projector")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jobrelay.cli.main", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)

    submitted = cli("submit", "demo.sleep", "--payload", '{"seconds": 60, "steps": 60}', *urls)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1]
    cancelled = cli("cancel", job_id, *urls[2:])
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert f"cancel requested for {job_id}" in cancelled.stdout and "cancel_requested_at" in cancelled.stdout
    finished = cli("submit", "demo.echo", "--payload", "1", "--wait", *urls)
    assert finished.returncode == 0, finished.stderr
    late = cli("cancel", finished.stdout.split()[1], *urls[2:])
    assert late.returncode == 1 and "409" in late.stdout and "succeeded" in late.stdout
