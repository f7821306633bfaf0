"""The SDK and the CLI ride out a restart of the status projector: wait(), events() and `jobrelay watch`.

Each test starts demo.sleep jobs on a private stack (real broker, real processes), stops the
projector process while they run, starts it again, and checks what the caller ends up with.
"""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from jobrelay.sdk import JobClient, JobView
from tests.integration.intakeserver import wait_until
from tests.integration.sdk.conftest import SdkStack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _follow(client: JobClient, ids: list[str], seen: list[JobView], drops: list[BaseException]) -> None:
    for view in client.events(ids, on_drop=drops.append):
        seen.append(view)


def _in_order_without_repeats(seen: list[JobView]) -> bool:
    sequences = [v.sequence for v in seen]
    numbers = [n for n in sequences if n is not None]
    return len(numbers) == len(sequences) and numbers == sorted(set(numbers))


def _running(client: JobClient, job_id: str) -> bool:
    return client.get(job_id).status == "running"


async def test_wait_survives_a_projector_restart_in_the_middle(sdk_stack: SdkStack) -> None:
    async with sdk_stack.async_client() as client:
        accepted = await client.submit("demo.sleep", {"seconds": 6, "steps": 6})
        waiting = asyncio.create_task(client.wait(accepted, timeout=120))
        with sdk_stack.client() as probe:
            await asyncio.to_thread(wait_until, lambda: _running(probe, accepted.id), 60, "job running")
        await asyncio.to_thread(sdk_stack.stop_projector)
        assert not waiting.done(), "wait() gave up (or ended) while the projector was down"
        await asyncio.to_thread(sdk_stack.start_projector)
        done = await asyncio.wait_for(waiting, 120)
    assert done.id == accepted.id and done.status == "succeeded"
    assert done.result == {"slept": 6, "attempt": 1}


def _has_many_job_stream(sdk_stack: SdkStack) -> bool:
    paths = httpx.get(f"{sdk_stack.url('projector')}/openapi.json", timeout=10).json()["paths"]
    return "/v1/events" in paths


def test_events_of_several_jobs_survive_a_projector_restart_without_repeats(sdk_stack: SdkStack) -> None:
    if not _has_many_job_stream(sdk_stack):
        pytest.skip("this status view has no GET /v1/events yet (it comes with the many-job streams)")
    drops: list[BaseException] = []
    with sdk_stack.client() as client, ThreadPoolExecutor(1) as pool:
        ids = [client.submit("demo.sleep", {"seconds": 5, "steps": 5}).id for _ in range(3)]
        seen: list[JobView] = []
        following = pool.submit(_follow, client, ids, seen, drops)

        def running() -> bool:
            return following.done() or {v.id for v in seen if v.status == "running"} == set(ids)

        wait_until(running, 60, "every job running")
        assert not following.done(), following.result()  # surfaces an error of the stream
        sdk_stack.stop_projector()
        sdk_stack.start_projector()
        following.result(timeout=120)
    assert drops, "the stream was up when the projector stopped"
    last = {job: [v for v in seen if v.id == job][-1] for job in ids}
    assert {job: view.status for job, view in last.items()} == dict.fromkeys(ids, "succeeded")
    assert all(view.result == {"slept": 5, "attempt": 1} for view in last.values())
    assert _in_order_without_repeats(seen), f"a repeat or out of order: {[v.sequence for v in seen]}"


async def test_async_events_of_one_job_resume_on_its_own_stream(sdk_stack: SdkStack) -> None:
    drops: list[BaseException] = []
    seen: list[JobView] = []
    async with sdk_stack.async_client() as client:
        job = (await client.submit("demo.sleep", {"seconds": 5, "steps": 5})).id

        async def follow() -> None:
            async for view in client.events([job], on_drop=drops.append):
                seen.append(view)

        following = asyncio.create_task(follow())
        while not any(v.status == "running" for v in seen):
            assert not following.done(), following.result()  # surfaces an error of the stream
            await asyncio.wait({following}, timeout=0.05)  # a running job shows within the test's timeout
        await asyncio.to_thread(sdk_stack.stop_projector)
        await asyncio.to_thread(sdk_stack.start_projector)
        await asyncio.wait_for(following, 120)
    assert drops and seen[-1].status == "succeeded" and seen[-1].progress == 100
    assert _in_order_without_repeats(seen), f"a repeat or out of order: {[v.sequence for v in seen]}"


class Output:
    """A process's output, read line by line in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            self.lines.put(line)

    def until(self, text: str, deadline: float = 60) -> None:
        """Block until a line contains `text`."""
        while True:
            line = self.lines.get(timeout=deadline)
            self.seen.append(line)
            if text in line:
                return

    def rest(self) -> str:
        """Everything it printed (once the process has exited)."""
        self.reader.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen)


@contextmanager
def _cli(sdk_stack: SdkStack, *args: str) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    command = [sys.executable, "-m", "jobrelay.cli.main", *args, "--status-url", sdk_stack.url("projector")]
    env = sdk_stack.env | {"COLUMNS": "200"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            yield process, Output(process)
        finally:
            if process.poll() is None:
                process.kill()


def test_jobrelay_watch_survives_a_projector_restart(sdk_stack: SdkStack) -> None:
    with sdk_stack.client() as client:
        job = client.submit("demo.sleep", {"seconds": 6, "steps": 6}).id
    with _cli(sdk_stack, "watch", job) as (process, output):
        output.until(f"{job[:8]} running")  # the CLI follows the job's stream
        sdk_stack.stop_projector()
        sdk_stack.start_projector()
        code = process.wait(timeout=120)
    printed = output.rest()
    assert code == 0, printed
    assert "reconnecting…" in printed
    final = json.loads(printed[printed.index("{") :])
    assert (final["id"], final["status"], final["result"]) == (job, "succeeded", {"slept": 6, "attempt": 1})


def test_jobrelay_watch_all_shows_the_tenants_jobs_in_one_table(sdk_stack: SdkStack) -> None:
    with sdk_stack.client() as client:
        jobs = [client.submit("demo.echo", {"n": n}).id for n in range(2)]
        assert all(client.wait(job, timeout=60).status == "succeeded" for job in jobs)
    with _cli(sdk_stack, "watch", "--all") as (process, output):
        output.until("following every job of the tenant")
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    printed = output.rest()
    assert code == 0, printed
    rows = [line for line in printed.splitlines() if any(job[:8] in line for job in jobs)]
    assert len(rows) == 2 and all("demo.echo" in row and "succeeded" in row for row in rows), printed
