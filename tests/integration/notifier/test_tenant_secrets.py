"""Each tenant's callbacks are signed with that tenant's own webhook secrets, verified with standardwebhooks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import DeliveryState
from jobrelay.security.keys import KeyFile
from tests.integration.notifier.conftest import SECRET_A, SECRET_B, StartNotifier, completed, publish, wait_until
from tests.integration.notifier.receiver import Receiver, serving

pytestmark = pytest.mark.kafka


async def test_a_tenants_webhook_verifies_with_its_own_secrets_only_and_both_during_a_rotation(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
) -> None:
    keys = KeyFile(Path(os.environ["JOBRELAY_AUTH_KEYS_FILE"]))  # the file the notifier reads (tests/conftest.py)
    acme, globex = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
    (acme_old,) = keys.webhook_secrets(acme)
    acme_new, acme_previous = keys.webhook_secrets(acme, rotate=True)
    (globex_secret,) = keys.webhook_secrets(globex)
    assert acme_previous == acme_old, "a rotation keeps the previous secret"
    every = [acme_new, acme_old, globex_secret, SECRET_A, SECRET_B]
    async with serving(Receiver(every)) as receiver:
        mine = completed(f"{receiver.base}/acme", tenant=acme)
        theirs = completed(f"{receiver.base}/globex", tenant=globex)
        operators = completed(f"{receiver.base}/none")  # no tenant: the operator's secrets
        await publish(kafka_settings, topics, mine, theirs, operators)
        notifier = await start_notifier(notifier_settings)

        async def delivered() -> bool:
            return (await notifier.store.counts()).get(DeliveryState.DELIVERED) == 3

        await wait_until(delivered, "3 deliveries")
        (to_acme,) = receiver.at("/acme")
        (to_globex,) = receiver.at("/globex")
        (to_none,) = receiver.at("/none")
    assert set(to_acme.verified_with) == {acme_new, acme_old}, "both secrets sign during the change-over"
    assert to_globex.verified_with == (globex_secret,), "another tenant's secret does not verify it"
    assert to_none.verified_with == (SECRET_A, SECRET_B)
    assert to_acme.payload["data"]["tenant"] == acme
