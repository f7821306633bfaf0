"""kill -9 with deliveries pending, restart: every pending delivery is made. Runs `python -m jobrelay.notifier`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from tests.integration.notifier.conftest import SECRET_A, SECRET_B, completed, publish, wait_until
from tests.integration.notifier.receiver import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotifierProcess:
    """The notifier as its own process, configured through the environment like in production."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, int(env["JOBRELAY_NOTIFIER_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobrelay.notifier"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=2) as client:
                return await client.get(path)
        except httpx.TransportError:
            return None


@pytest.fixture
def process_env(kafka_bootstrap: str, topics: TopicSettings, tmp_path: Path) -> dict[str, str]:
    bootstrap = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOBRELAY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    return (
        os.environ
        | bootstrap
        | {
            "JOBRELAY_TOPICS_PREFIX": topics.prefix,
            "JOBRELAY_TOPICS_PARTITIONS": str(topics.partitions),
            "JOBRELAY_NOTIFIER_PORT": str(_free_port()),
            "JOBRELAY_NOTIFIER_DATABASE": str(tmp_path / "notifier.sqlite3"),
            "JOBRELAY_NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:8]}",
            "JOBRELAY_NOTIFIER_SIGNING_SECRETS": f"{SECRET_A},{SECRET_B}",
            "JOBRELAY_NOTIFIER_RETRY_SCHEDULE": ",".join(["0.2"] * 50),
            "JOBRELAY_NOTIFIER_JITTER": "0",
            "JOBRELAY_NOTIFIER_ALLOW_HTTP": "true",
            "JOBRELAY_NOTIFIER_ALLOWED_NETWORKS": "127.0.0.1/32",
            "JOBRELAY_LOG_FORMAT": "json",
        }
    )


@pytest.fixture
def notifier_process(process_env: dict[str, str], tmp_path: Path) -> Iterator[NotifierProcess]:
    process = NotifierProcess(process_env, tmp_path / "notifier.log")
    try:
        yield process
    finally:
        process.stop()
        sys.stderr.write(process.log.read_text(errors="replace")[-4000:] if process.log.exists() else "")


async def _pending(database: str) -> int:
    async with (
        aiosqlite.connect(database) as db,
        db.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'") as c,
    ):
        row = await c.fetchone()
    return int(row[0]) if row else 0


async def test_pending_deliveries_survive_kill_9(
    kafka_settings: KafkaSettings, topics: TopicSettings, receiver: Receiver, notifier_process: NotifierProcess
) -> None:
    receiver.scripts["/hook"] = [503]  # down for maintenance: every delivery stays pending
    before = [completed(f"{receiver.base}/hook") for _ in range(6)]
    await publish(kafka_settings, topics, *before)
    notifier_process.start()

    async def each_tried() -> bool:
        return {d.webhook_id for d in receiver.at("/hook")} == {job.event_id for job in before}

    await wait_until(each_tried, "every delivery attempted at least once")
    ready = await notifier_process.get("/readyz")
    assert ready is not None and ready.status_code == 200 and ready.json()["ready"] is True
    assert notifier_process.signal(signal.SIGKILL) == -signal.SIGKILL
    assert await _pending(notifier_process.env["JOBRELAY_NOTIFIER_DATABASE"]) == 6, "recorded before the crash"

    after = [completed(f"{receiver.base}/hook") for _ in range(2)]  # completed while the notifier is down
    await publish(kafka_settings, topics, *after)
    receiver.scripts["/hook"] = [200]
    notifier_process.start()
    wanted = {job.event_id for job in before + after}

    async def each_delivered() -> bool:
        return sorted(d.webhook_id for d in receiver.at("/hook") if d.status == 200) == sorted(wanted)

    await wait_until(each_delivered, "every pending delivery made after the restart")
    assert all(d.verified_with == (SECRET_A, SECRET_B) for d in receiver.at("/hook"))

    async def metrics_show_it() -> bool:
        metrics = await notifier_process.get("/metrics")
        return metrics is not None and 'jobrelay_webhook_deliveries_total{outcome="delivered"} 8.0' in metrics.text

    await wait_until(metrics_show_it, "/metrics counts the eight deliveries")
    assert await _pending(notifier_process.env["JOBRELAY_NOTIFIER_DATABASE"]) == 0
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is the signal's.
    assert notifier_process.signal(signal.SIGTERM) == 0, "a graceful stop exits 0"
    assert '"notifier stopped"' in notifier_process.log.read_text(), "SIGTERM drains and stops cleanly"
