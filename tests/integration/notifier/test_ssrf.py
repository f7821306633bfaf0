"""The SSRF guard at delivery time: with the default settings, internal addresses are never called."""

from __future__ import annotations

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import DeliveryState
from tests.integration.notifier.conftest import SECRET_A, StartNotifier, completed, dead_letters, publish, states
from tests.integration.notifier.receiver import Receiver

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_callbacks_to_internal_addresses_are_refused_before_any_connection(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    receiver: Receiver,
    start_notifier: StartNotifier,
    notifier_settings: NotifierSettings,
    scheme: str,
) -> None:
    port = receiver.port  # a live receiver on loopback: it must see nothing
    urls = [
        f"{scheme}://127.0.0.1:{port}/hook",
        f"{scheme}://[::1]:{port}/hook",
        f"{scheme}://localhost:{port}/hook",  # a name resolving to loopback
        f"{scheme}://169.254.169.254/latest/meta-data/",  # cloud metadata
        f"{scheme}://10.0.0.1/hook",
    ]
    jobs = [completed(url) for url in urls]
    await publish(kafka_settings, topics, *jobs)
    # Default settings (https only, nothing allow-listed); the http case only lifts the scheme rule,
    # so the address check alone has to refuse.
    defaults = NotifierSettings(
        database=notifier_settings.database,
        group_id=notifier_settings.group_id,
        signing_secrets=(SECRET_A,),  # type: ignore[arg-type]  # pydantic turns str into SecretStr
        allow_http=scheme == "http",
    )
    notifier = await start_notifier(defaults)
    letters = await dead_letters(kafka_settings, topics, expect=len(jobs))

    assert receiver.got == []
    assert await states(notifier) == dict.fromkeys(urls, (DeliveryState.REFUSED, 0, None)), "refused, never tried"
    assert sorted(x.job_id or "" for x in letters) == sorted(job.job_id for job in jobs)
    assert all("not a public address" in x.error_message and x.attempts == 0 for x in letters), letters
