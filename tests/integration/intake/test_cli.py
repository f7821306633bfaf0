"""`jobrelay intake` as an operator runs it: serves, accepts, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from tests.integration.intakeserver import ready, wait_until
from tests.integration.kafkautil import read_all

pytestmark = pytest.mark.kafka


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def _port(lines: queue.Queue[str], seen: list[str]) -> int:
    while True:
        line = lines.get(timeout=60)
        seen.append(line)
        if match := re.search(r"running on http://127\.0\.0\.1:(\d+)", line):
            return int(match.group(1))


def test_the_cli_serves_and_stops_on_sigterm(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "JOBRELAY_TOPICS_PREFIX": topics.prefix,
        "JOBRELAY_INTAKE_IDEMPOTENCY_DB": str(tmp_path / "keys.sqlite3"),
        "JOBRELAY_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "jobrelay.intake", "--port", "0"]
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as process:
        reader = threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True)
        reader.start()
        try:
            url = f"http://127.0.0.1:{_port(lines, seen)}"
            wait_until(lambda: ready(url), 60, "intake ready")
            response = httpx.post(f"{url}/v1/jobs", json={"type": "demo.echo", "payload": [1]}, timeout=30)
            assert response.status_code == 202
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal: the exit status says "SIGTERM".
            assert process.wait(timeout=60) == 0, "a graceful stop exits 0"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        reader.join(10)
    while not lines.empty():
        seen.append(lines.get())
    assert any("Application shutdown complete" in line for line in seen), "the lifespan (producer flush) ran"
    assert any('"job accepted"' in line and response.json()["id"] in line for line in seen), "logs carry the job id"
    (record,) = asyncio.run(read_all(kafka_settings, topics.requested, expect=1))
    assert record.key == response.json()["id"].encode()
