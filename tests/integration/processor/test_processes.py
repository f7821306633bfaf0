"""Real processor processes: killed with -9, stopped with SIGTERM, sharing partitions.

Each process is `python -m jobrelay.processor` started by the test and stopped by its PID.
`demo.sleep` appends "<job id> <attempt>" to a file when an attempt starts, so the tests see
which attempts ran in which process, across crashes.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobCompleted, JobProgress, ProgressKind, TerminalStatus
from jobrelay.processor.settings import ProcessorSettings
from tests.integration.processor.conftest import (
    Spawned,
    attempts_in,
    events,
    job_for_partition,
    processor,
    publisher,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _outcomes(completed: list[Event]) -> dict[str, JobCompleted]:
    counts = Counter(e.job_id for e in completed)
    assert max(counts.values(), default=1) == 1, f"a job completed twice: {counts.most_common(3)}"
    return {e.job_id or "": e for e in completed if isinstance(e, JobCompleted)}


@pytest.mark.timeout(240)
async def test_after_kill_9_only_the_jobs_in_flight_run_again_as_a_new_attempt(
    kafka_settings: KafkaSettings, topics: TopicSettings, spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    record = str(tmp_path / "attempts.txt")
    longs, shorts = [], []
    for partition in range(topics.partitions):
        # A long job holds each partition's commit point while the short ones after it finish.
        longs.append(job_for_partition(partition, topics.partitions, "demo.sleep", {"seconds": 8, "record": record}))
        shorts += [
            job_for_partition(partition, topics.partitions, "demo.sleep", {"seconds": 0.05, "record": record})
            for _ in range(4)
        ]
    first = spawn()
    async with publisher(kafka_settings, topics) as pub:
        for job in [*longs, *shorts]:
            await pub.publish(job)
    await wait_for(
        lambda: events(kafka_settings, topics.completed),
        lambda done: len(done) >= len(shorts),
        60,
        "the short jobs did not complete",
    )
    first.stop(signal.SIGKILL)
    finished_before_crash = set(_outcomes(await events(kafka_settings, topics.completed)))
    assert {job.job_id for job in shorts} <= finished_before_crash
    in_flight = {job.job_id for job in longs} - finished_before_crash
    assert in_flight, "the long jobs were still running when the processor died"

    second = spawn()
    completed = await events(kafka_settings, topics.completed, expect=len(longs) + len(shorts), deadline=120)
    assert second.stop(signal.SIGTERM) == 0
    outcome = _outcomes(completed)
    assert set(outcome) == {job.job_id for job in [*longs, *shorts]}, "no job is lost"
    assert all(e.status is TerminalStatus.SUCCEEDED for e in outcome.values())
    runs = attempts_in(tmp_path / "attempts.txt")
    rerun = {job_id for job_id, attempts in runs.items() if len(attempts) > 1}
    assert rerun == in_flight, "only the jobs in flight ran again, finished ones above the commit point did not"
    for job_id in in_flight:
        assert runs[job_id] == [1, 2] and outcome[job_id].attempt == 2, "the re-run knows it is attempt 2"


async def test_sigterm_lets_the_running_job_finish_and_commit(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    processor_settings: ProcessorSettings,
    spawn: Callable[..., Spawned],
    tmp_path: Path,
) -> None:
    record = tmp_path / "attempts.txt"
    job = job_for_partition(0, topics.partitions, "demo.sleep", {"seconds": 2, "steps": 2, "record": str(record)})
    running = spawn()
    async with publisher(kafka_settings, topics) as pub:
        await pub.publish(job)
        await wait_for(lambda: _read(record), lambda runs: job.job_id in runs, 60, "the job never started")
        assert running.stop(signal.SIGTERM) == 0, "a graceful stop exits 0"
        (done,) = _outcomes(await events(kafka_settings, topics.completed)).values()
        assert done.job_id == job.job_id and done.status is TerminalStatus.SUCCEEDED and done.attempt == 1
        markers = [job_for_partition(p, topics.partitions, "demo.echo", {}) for p in range(topics.partitions)]
        for marker in markers:
            await pub.publish(marker)
    # The next owner starts after the committed offset: the finished job does not run again.
    async with processor(kafka_settings, topics, processor_settings):
        await events(kafka_settings, topics.completed, expect=1 + len(markers))
    assert attempts_in(record) == {job.job_id: [1]}
    assert len(_outcomes(await events(kafka_settings, topics.completed))) == 1 + len(markers)


@pytest.mark.timeout(240)
async def test_two_processes_share_the_work_and_a_sigterm_hands_partitions_over(
    kafka_settings: KafkaSettings, topics: TopicSettings, spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    record = tmp_path / "attempts.txt"
    one, two = spawn(max_in_flight=2), spawn(max_in_flight=2)
    owned = [set((await p.wait_ready())["partitions"]) for p in (one, two)]
    await wait_for(
        _ownership(one, two),
        lambda parts: all(parts) and sum(map(len, parts)) == topics.partitions,
        60,
        "the two processors never shared the partitions",
    )
    jobs = [
        job_for_partition(
            n % topics.partitions, topics.partitions, "demo.sleep", {"seconds": 0.3, "steps": 1, "record": str(record)}
        )
        for n in range(48)
    ]
    async with publisher(kafka_settings, topics) as pub:
        for job in jobs:
            await pub.publish(job)
    await wait_for(lambda: events(kafka_settings, topics.completed), lambda done: len(done) >= 6, 60, "no progress")
    assert one.stop(signal.SIGTERM) == 0
    completed = await events(kafka_settings, topics.completed, expect=len(jobs), deadline=120)
    assert await two.readiness() != {} and two.process.poll() is None
    assert two.stop(signal.SIGTERM) == 0
    outcome = _outcomes(completed)
    assert set(outcome) == {job.job_id for job in jobs}, "nothing is lost"
    assert all(e.status is TerminalStatus.SUCCEEDED for e in outcome.values())
    assert all(attempts == [1] for attempts in attempts_in(record).values()), "nothing ran twice"
    workers = {
        e.worker
        for e in await events(kafka_settings, topics.progress)
        if isinstance(e, JobProgress) and e.kind is ProgressKind.STARTED
    }
    assert len(workers) == 2, f"both processes ran jobs: {workers} (first assignments {owned})"


def _ownership(*processes: Spawned) -> Callable[[], Awaitable[list[set[int]]]]:
    async def probe() -> list[set[int]]:
        return [set((await p.readiness()).get("partitions", [])) for p in processes]

    return probe


async def _read(path: Path) -> dict[str, list[int]]:
    return attempts_in(path)


@pytest.mark.timeout(240)
async def test_a_processor_paused_past_its_session_cannot_commit_the_jobs_its_successor_took_over(
    kafka_settings: KafkaSettings, topics: TopicSettings, spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    record = tmp_path / "attempts.txt"
    jobs = [
        job_for_partition(p, topics.partitions, "demo.sleep", {"seconds": 4, "record": str(record)})
        for p in range(topics.partitions)
    ]
    zombie = spawn()
    await zombie.wait_ready()
    async with publisher(kafka_settings, topics) as pub:
        for job in jobs:
            await pub.publish(job)
        await wait_for(  # their starts are committed: a re-run knows it is attempt 2
            lambda: events(kafka_settings, topics.progress),
            lambda progress: len(_started(progress)) == len(jobs),
            60,
            "the first processor never started them",
        )
        zombie.process.send_signal(signal.SIGSTOP)  # frozen mid-job, past its session timeout
        successor = spawn()
        await events(kafka_settings, topics.completed, expect=len(jobs), deadline=120)
        zombie.process.send_signal(signal.SIGCONT)  # its jobs are overdue: they finish at once, then it commits
        await wait_for(zombie.readiness, lambda body: body != {}, 60, "the paused processor never came back")
        markers = [job_for_partition(p, topics.partitions, "demo.echo", {}) for p in range(topics.partitions)]
        for marker in markers:
            await pub.publish(marker)
        completed = await events(kafka_settings, topics.completed, expect=len(jobs) + len(markers), deadline=120)
    outcome = _outcomes(completed)  # fails if any job completed twice
    assert set(outcome) == {job.job_id for job in [*jobs, *markers]}, "nothing is lost"
    assert all(attempts == [1, 2] for attempts in attempts_in(record).values()), "each job re-ran once, after the pause"
    assert all(outcome[job.job_id].attempt == 2 for job in jobs), "the successor's outcomes are the ones committed"
    for spawned in (zombie, successor):
        assert spawned.stop(signal.SIGTERM) == 0, f"a clean stop; log: {spawned.log}"


def _started(progress: list[Event]) -> set[str]:
    return {e.job_id for e in progress if isinstance(e, JobProgress) and e.kind is ProgressKind.STARTED}
