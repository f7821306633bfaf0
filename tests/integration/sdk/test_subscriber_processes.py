"""Downstream consumers as their own processes: at least once across kill -9, and `jobrelay completions tail`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import TerminalStatus
from tests.integration.sdk.outcomes import committed_offsets, outcome, publish, send_raw
from tests.integration.sdk.recorder import BATCH

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


class Process:
    """A child process with the test's Kafka and topics in its environment, output to files."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout, self.stderr = tmp / "stdout", tmp / "stderr"

    def start(self, *argv: str) -> None:
        with self.stdout.open("ab") as out, self.stderr.open("ab") as err:
            self.process = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=out, stderr=err)

    def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)


@pytest.fixture
def child(kafka_bootstrap: str, topics: TopicSettings, tmp_path: Path) -> Iterator[Process]:
    """One child process at a time, killed at the end if still running; its stderr shown on failure."""
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOBRELAY_TOPICS_PREFIX": topics.prefix,
        "JOBRELAY_LOG_FORMAT": "json",
    }
    process = Process(env, tmp_path)
    try:
        yield process
    finally:
        process.stop()
        sys.stderr.write(process.stderr.read_text(errors="replace")[-4000:] if process.stderr.exists() else "")


async def wait_until(check: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Poll `check` until it holds; fail with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _lines(path: Path) -> list[str]:
    # a line without its newline is one the writer had not finished when it was killed
    text = path.read_text() if path.exists() else ""
    return text.splitlines()[: text.count("\n")]


async def test_at_least_once_across_kill_9(
    kafka_settings: KafkaSettings, topics: TopicSettings, child: Process
) -> None:
    jobs = [outcome() for _ in range(50)]
    await publish(kafka_settings, topics, jobs)
    group, handled = f"downstream-{uuid.uuid4().hex[:8]}", child.tmp / "handled.txt"
    recorder = (sys.executable, "-m", "tests.integration.sdk.recorder", group, str(handled))

    child.start(*recorder, "0.05")
    # 22: most likely inside a batch, so that some handled completions were not committed yet
    await wait_until(lambda: len(_lines(handled)) >= 22, "the first run handled 22 completions")
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    first_run = [line.split() for line in _lines(handled)]
    assert len(first_run) < 50, "killed mid-way"
    committed = await committed_offsets(kafka_settings, group)
    uncommitted = {
        job
        for job, partition, offset in first_run
        if int(offset) >= committed.get(TopicPartition(topics.completed, int(partition)), 0)
    }

    child.start(*recorder, "0")
    wanted = {job.job_id for job in jobs}
    await wait_until(lambda: {line.split()[0] for line in _lines(handled)} == wanted, "every completion handled")
    assert child.signal(signal.SIGTERM) == 0, "SIGTERM stops the subscriber cleanly"

    second_run = [line.split()[0] for line in _lines(handled)][len(first_run) :]
    assert Counter(second_run).most_common(1)[0][1] == 1, "no repeats within a run"
    repeated = {job for job, _, _ in first_run} & set(second_run)
    # What comes again is exactly what was handled but not committed: at most the batch in hand at the kill.
    assert repeated == uncommitted
    assert len(repeated) <= BATCH and repeated <= {job for job, _, _ in first_run[-BATCH:]}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
async def test_completions_tail_prints_the_selected_outcomes_and_stops_cleanly(
    kafka_settings: KafkaSettings, topics: TopicSettings, child: Process, stop: signal.Signals
) -> None:
    kafka = kafka_settings
    wanted = [outcome("report.daily"), outcome("report.monthly")]
    others = [outcome("report.daily", TerminalStatus.FAILED), outcome("image.resize")]
    await publish(kafka, topics, [wanted[0], others[0]])
    poison_offset = await send_raw(kafka, topics.completed, b"\x00not avro", partition=1)
    await publish(kafka, topics, [others[1], wanted[1]])
    as_json = stop is signal.SIGTERM
    command = ["completions", "tail", "--type", "report.*", "--status", "succeeded", "--from-beginning"]
    child.start(str(Path(sys.executable).with_name("jobrelay")), *command, *(["--json"] if as_json else []))

    await wait_until(lambda: len(_lines(child.stdout)) == 2, "both matching outcomes printed")
    await wait_until(lambda: f'"offset": {poison_offset}' in child.stderr.read_text(), "the poison record logged")
    assert child.signal(stop) == 0, "a graceful stop exits 0"
    lines = _lines(child.stdout)
    if as_json:
        printed = sorted((row["job_id"], row["status"], row["result"]) for row in map(json.loads, lines))
        assert printed == sorted((job.job_id, "SUCCEEDED", json.loads(job.result or "")) for job in wanted)
    else:
        assert sorted(line.split()[1:4] for line in lines) == sorted(
            ["SUCCEEDED", job.job_type, job.job_id] for job in wanted
        )
    skipped = [json.loads(line) for line in _lines(child.stderr) if "undecodable record skipped" in line]
    assert [(s["topic"], s["partition"], s["offset"]) for s in skipped] == [(topics.completed, 1, poison_offset)]
