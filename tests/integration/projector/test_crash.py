"""kill -9 mid-stream, restart: the view equals a fresh rebuild, no event applied twice or skipped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import EventProducer
from jobrelay.projector.rebuild import rebuild
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store import SqliteStore, generations
from tests.integration.projector.conftest import Start, job_of, life, wait_for_status

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

JOBS = 1500


def _applied(db_path: Path) -> int:
    """Records the view has stored positions for (0 before the file exists)."""
    if not db_path.is_symlink():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)) as connection:
            (total,) = connection.execute("SELECT coalesce(sum(next_offset), 0) FROM positions").fetchone()
    except sqlite3.OperationalError:  # the generation or its tables are not created yet
        return 0
    return int(total)


def _start(kafka: KafkaSettings, topics: TopicSettings, db_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "JOBRELAY_TOPICS_PREFIX": topics.prefix,
        "JOBRELAY_TOPICS_PARTITIONS": str(topics.partitions),
        "JOBRELAY_PROJECTOR_DB_PATH": str(db_path),
        "JOBRELAY_PROJECTOR_PORT": "0",
        "JOBRELAY_PROJECTOR_BATCH_SIZE": "40",  # many small transactions: plenty of places to die in
        "JOBRELAY_LOG_LEVEL": "INFO",
        "JOBRELAY_LOG_FORMAT": "json",
    }
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "jobrelay.projector"], env=env, stderr=sink)


async def _wait_applied(db_path: Path, at_least: int, process: subprocess.Popen[bytes], deadline: float) -> int:
    end = time.monotonic() + deadline
    while (applied := await asyncio.to_thread(_applied, db_path)) < at_least:
        assert process.poll() is None, f"the projector exited with {process.returncode}"
        assert time.monotonic() < end, f"only {applied} of {at_least} records applied"
        await asyncio.sleep(0.01)  # polling another process's database, with a deadline
    return applied


async def test_kill_9_mid_stream_then_restart_equals_a_fresh_rebuild(
    kafka_settings: KafkaSettings, topics: TopicSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    events = [event for _ in range(JOBS) for event in life()]
    for start in range(0, len(events), 1000):
        await asyncio.gather(*(publisher.publish(e) for e in events[start : start + 1000]))
    db_path = tmp_path / "view.sqlite"

    first = _start(kafka_settings, topics, db_path, tmp_path / "first.log")
    try:
        await _wait_applied(db_path, len(events) // 4, first, deadline=90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    at_kill = _applied(db_path)
    assert at_kill < len(events), "the projector finished before it could be killed mid-stream"

    second = _start(kafka_settings, topics, db_path, tmp_path / "second.log")
    try:
        await _wait_applied(db_path, len(events), second, deadline=120)
    finally:
        second.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status still says why.
        assert second.wait(timeout=60) == 0, "a graceful stop exits 0"
    assert '"projector stopped"' in (tmp_path / "second.log").read_text(), "graceful shutdown on SIGTERM"

    rebuilt = await rebuild(ProjectorSettings(db_path=tmp_path / "rebuilt.sqlite"), kafka_settings, topics)
    assert rebuilt.records == len(events)
    incremental = await SqliteStore.open(generations.current(db_path))
    fresh = await SqliteStore.open(generations.current(tmp_path / "rebuilt.sqlite"))
    try:
        left, right = await incremental.all_rows(), await fresh.all_rows()
        assert len(left) == JOBS
        # The change counter depends on batch boundaries; the state and the count of applied events do not.
        assert [(r.state, r.applied) for r in left] == [(r.state, r.applied) for r in right]
        assert sum(r.applied for r in left) == len(events), "an event was applied twice or skipped"
        assert {r.state.status.value for r in left} == {"SUCCEEDED"}
        assert await incremental.positions() == await fresh.positions()
    finally:
        await incremental.close()
        await fresh.close()
    print(f"killed at {at_kill}/{len(events)} records; rebuild {rebuilt.rate:,.0f} records/s")


async def test_a_rebuild_is_swapped_into_the_running_projector(
    start_projector: Start,
    publisher: EventProducer,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "view.sqlite"
    client = await start_projector(db_path=db_path, swap_check_s=0.1)
    before = life()
    for event in before:
        await publisher.publish(event)
    await wait_for_status(client, job_of(before), "succeeded")
    serving = generations.current(db_path)
    report = await rebuild(ProjectorSettings(db_path=db_path), kafka_settings, topics)
    assert generations.current(db_path) == report.generation != serving
    deadline = time.monotonic() + 30
    while serving.exists():  # the old generation is deleted once the projector let go of it
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    after = life()
    for event in after:  # applied by the running projector, now on the rebuilt generation
        await publisher.publish(event)
    await wait_for_status(client, job_of(after), "succeeded")
    assert (await client.get(f"/v1/jobs/{job_of(before)}")).json()["status"] == "succeeded"
    rebuilt = await SqliteStore.open(report.generation)
    try:
        assert (await rebuilt.get(job_of(after))) is not None, "the new events went into the rebuilt view"
    finally:
        await rebuilt.close()
