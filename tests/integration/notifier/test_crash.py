"""kill -9 with deliveries pending, restart: every pending delivery is made. Runs `python -m jobrelay.notifier`."""

from __future__ import annotations

import signal

import aiosqlite
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from tests.integration.notifier.conftest import SECRET_A, SECRET_B, NotifierProcess, completed, publish, wait_until
from tests.integration.notifier.receiver import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


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
