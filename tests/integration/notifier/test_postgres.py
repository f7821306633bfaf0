"""The notifier with its delivery state in PostgreSQL (store=postgres), against the real broker."""

from __future__ import annotations

import asyncpg
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import DeliveryState
from tests.integration.notifier.conftest import StartNotifier, completed, publish, wait_until
from tests.integration.notifier.receiver import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [tuple(record) for record in await connection.fetch(query)]
    finally:
        await connection.close()


async def test_the_notifier_keeps_its_deliveries_in_postgres(
    postgres_dsn: str,  # first: its schema is dropped after the notifier (a later fixture) has stopped
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    event = completed(f"{receiver.base}/hooks/pg")
    await publish(kafka_settings, topics, event, event)  # twice, as after a producer retry: one delivery
    settings = notifier_settings.model_copy(update={"store": "postgres", "postgres_dsn": postgres_dsn})
    notifier = await start_notifier(settings)

    async def delivered() -> bool:
        return (await notifier.store.counts()).get(DeliveryState.DELIVERED) == 1

    await wait_until(delivered, "the webhook delivered")
    assert [d.webhook_id for d in receiver.at("/hooks/pg")] == [event.event_id]
    assert await _rows(postgres_dsn, "SELECT url, state, attempts FROM deliveries") == [
        (f"{receiver.base}/hooks/pg", "delivered", 1)
    ]
