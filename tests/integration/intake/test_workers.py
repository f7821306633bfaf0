"""`JOBRELAY_INTAKE_WORKERS=2`: two processes on one port share the work and the idempotency file."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.codec import AvroCodec
from tests.integration.intakeserver import ready, wait_until
from tests.integration.kafkautil import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
WORKERS, POSTS = 2, 16


def _port(log: Path) -> int:
    def found() -> bool:
        return re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text()) is not None

    wait_until(found, 60, "the intake logs its port")
    match = re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text())
    assert match is not None
    return int(match.group(1))


def _worker_pids(parent: int) -> set[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(pid) for pid in children}


def test_two_workers_accept_on_one_port_and_a_retry_on_either_is_one_job(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "JOBRELAY_TOPICS_PREFIX": topics.prefix,
        "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(tmp_path / "keys.sqlite3"),
        "JOBRELAY_INTAKE_WORKERS": str(WORKERS),
        "JOBRELAY_LOG_FORMAT": "json",
    }
    log = tmp_path / "intake.log"
    command = [sys.executable, "-m", "jobrelay.intake", "--port", "0"]
    with log.open("w") as out, subprocess.Popen(command, env=env, stderr=out, stdout=subprocess.DEVNULL) as process:
        try:
            url = f"http://127.0.0.1:{_port(log)}"
            wait_until(lambda: len(_worker_pids(process.pid)) >= WORKERS, 60, "both workers started")
            # Each worker must be ready: poll on fresh connections until both answered 200 (a
            # connection lands on either worker), then keep going.
            wait_until(lambda: ready(url), 60, "intake ready")
            key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
            job = {"type": "demo.echo", "payload": {"n": 1}}
            answers = []
            for _ in range(POSTS):  # one connection each: the kernel spreads them over the workers
                with httpx.Client(base_url=url, timeout=30) as http:
                    answers.append(http.post("/v1/jobs", json=job, headers=key))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, "a graceful stop exits 0"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert [a.status_code for a in answers] == [202] * POSTS, [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == POSTS - 1
    records = asyncio.run(read_all(kafka_settings, topics.requested))
    events = [AvroCodec().decode(r.value) for r in records]
    assert [e.job_id for e in events if isinstance(e, JobRequested)] == [answers[0].json()["id"]], "one record"
    lines = log.read_text()
    assert lines.count("Application startup complete") == WORKERS
    assert lines.count("Application shutdown complete") == WORKERS, "every worker flushed and stopped"
