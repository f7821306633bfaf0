"""Two notifier replicas on one PostgreSQL delivery state, against the real broker and a real receiver.

In a clean run every webhook is delivered once, by whichever replica claimed it; a replica killed
(-9) mid-delivery leaves its claims to run out, and the other replica completes those deliveries.
"""

from __future__ import annotations

import signal
import time

import asyncpg
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.notifier.settings import NotifierSettings
from tests.integration.notifier.conftest import NotifierProcess, StartNotifier, completed, publish, wait_until
from tests.integration.notifier.receiver import HANG, Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _states(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {state: int(count) for state, count in rows}
    finally:
        await connection.close()


async def test_two_replicas_deliver_every_webhook_once(
    postgres_dsn: str,  # first: its schema is dropped after the notifiers (later fixtures) have stopped
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    shared = {"store": "postgres", "postgres_dsn": postgres_dsn, "per_host_concurrency": 3}
    for name in ("a", "b"):
        await start_notifier(notifier_settings.model_copy(update=shared | {"replica_id": name}))
    jobs = [completed(f"{receiver.base}/hooks/{n % 5}") for n in range(60)]
    await publish(kafka_settings, topics, *jobs)

    async def all_delivered() -> bool:
        return (await _states(postgres_dsn)).get("delivered") == len(jobs)

    await wait_until(all_delivered, "every webhook delivered")
    seen = [d.webhook_id for d in receiver.got]
    assert sorted(seen) == sorted(job.event_id for job in jobs), "each webhook once: none missing, none twice"


async def test_a_replica_killed_mid_delivery_leaves_its_deliveries_to_the_other_after_the_lease(
    postgres_dsn: str,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
    notifier_process: NotifierProcess,
) -> None:
    lease_s = 6.0
    notifier_process.env |= {
        "JOBRELAY_NOTIFIER_STORE": "postgres",
        "JOBRELAY_NOTIFIER_POSTGRES_DSN": postgres_dsn,
        "JOBRELAY_NOTIFIER_REPLICA_ID": "doomed",
        "JOBRELAY_NOTIFIER_CLAIM_LEASE_S": str(lease_s),
        "JOBRELAY_NOTIFIER_REQUEST_TIMEOUT": "5",
    }
    jobs = [completed(f"{receiver.base}/slow/{n}") for n in range(3)]
    for job in jobs:  # each receiver path hangs on its first request, then answers 200
        receiver.scripts[f"/slow/{job.callback_url.rsplit('/', 1)[1]}"] = [HANG, 200]  # type: ignore[union-attr]
    await publish(kafka_settings, topics, *jobs)
    notifier_process.start()

    async def all_in_flight() -> bool:
        return len(receiver.got) == len(jobs)

    await wait_until(all_in_flight, "the doomed replica attempting every delivery")
    assert notifier_process.signal(signal.SIGKILL) == -signal.SIGKILL
    killed_at = time.monotonic()
    assert (await _states(postgres_dsn)).get("pending") == len(jobs), "claimed, never finished"

    settings = notifier_settings.model_copy(
        update={
            "store": "postgres",
            "postgres_dsn": postgres_dsn,
            "replica_id": "survivor",
            "group_id": notifier_process.env["JOBRELAY_NOTIFIER_GROUP_ID"],
        }
    )
    await start_notifier(settings)

    async def all_delivered() -> bool:
        return (await _states(postgres_dsn)).get("delivered") == len(jobs)

    await wait_until(all_delivered, "the survivor completing the doomed replica's deliveries")
    took = time.monotonic() - killed_at
    receiver.release.set()
    by_id: dict[str, int] = {}
    for delivery in receiver.got:
        by_id[delivery.webhook_id] = by_id.get(delivery.webhook_id, 0) + 1
    assert by_id == {job.event_id: 2 for job in jobs}, "the cut attempt, then the survivor's, same webhook-id"
    assert took >= lease_s / 2, f"taken over after {took:.1f} s: before the lease ran out"
    print(f"figure: 3 deliveries of a replica killed mid-attempt completed by the other {took:.1f} s later")
