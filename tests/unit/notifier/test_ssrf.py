"""With the default settings, a delivery to an internal address is refused before any connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jobrelay.notifier.attempt import Attempter
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import Completion, DeliveryState, NewDelivery
from jobrelay.notifier.store.sqlite import SqliteDeliveryStore
from jobrelay.security.urls import UnsafeURLError, check_url

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INTERNAL = [
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/hook",
    "https://localhost:8443/hook",
    "https://[::ffff:10.0.0.1]/hook",  # IPv4 mapped into IPv6
    "https://[64:ff9b::169.254.169.254]/",  # NAT64 of the metadata address
    "https://[64:ff9b:1::7f00:1]/",  # NAT64 local use
    "https://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "https://[::127.0.0.1]/",  # IPv4-compatible
    "https://[::ffff:0:169.254.169.254]/",  # IPv4-translated
]


@pytest.mark.parametrize("url", INTERNAL)
async def test_the_default_policy_refuses_internal_addresses(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="not a public address"):
        await check_url(url, NotifierSettings().url_policy())


def _refuse_any_request(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, but {request.url} was")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteDeliveryStore]:
    store = await SqliteDeliveryStore.open(tmp_path / "n.sqlite3")
    yield store
    await store.close()


@pytest.mark.parametrize("url", [*INTERNAL, "http://example.com/hook", "not a url"])
async def test_a_refused_delivery_is_final_and_never_sent(store: SqliteDeliveryStore, url: str) -> None:
    completion = Completion("evt", "job", "t", b"{}", "job-completed", 0, 0, None, b"v", ())
    await store.record([(completion, [NewDelivery(url)])], {}, now=1.0)
    (delivery,) = await store.due(now=1.0, limit=1, per_host=1)
    settings = NotifierSettings(signing_secrets=(SECRET,))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.MockTransport(_refuse_any_request)) as client:
        verdict = await Attempter(settings, client, store)(delivery)
    assert (verdict.state, verdict.attempts) == (DeliveryState.REFUSED, 0)
    assert verdict.error and verdict.error.startswith("refused by the SSRF guard")
    assert [d.id for d in await store.dead_letters_pending(limit=5)] == [delivery.id], "it goes to job-dlq"
