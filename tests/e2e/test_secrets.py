"""No log line of any service carries an API key, a webhook secret or the id secret, after a run that used them all."""

from __future__ import annotations

import json

import httpx
import pytest

from jobrelay.sdk import AsyncJobClient
from jobrelay.security.keys import KeyFile, Scope
from tests.e2e.conftest import RunningStack
from tests.e2e.test_stack import _until
from tests.integration.notifier.receiver import Receiver, serving

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_no_log_line_contains_a_key_or_a_secret(running_stack: RunningStack) -> None:
    keys = KeyFile(running_stack.stack.keys_file)
    api_key, _ = keys.add("logcheck", (Scope.SUBMIT, Scope.READ))  # a tenant of this test's own
    (tenant_secret,) = keys.webhook_secrets("logcheck")
    status_url = running_stack.url("projector")
    await _until(lambda: _opens(status_url, api_key), deadline=10)  # the services re-read the key file
    receiver = Receiver(secrets=[tenant_secret])
    client = AsyncJobClient(running_stack.url("intake"), status_base_url=status_url, api_key=api_key)
    async with serving(receiver), client:
        done = await client.wait(
            await client.submit("demo.echo", {"n": 1}, callback_url=f"{receiver.base}/hook"), timeout=60
        )
        assert done.status == "succeeded"
        await _until(lambda: len(receiver.at("/hook")) >= 1)
        (delivery,) = receiver.at("/hook")
        assert delivery.verified_with == (tenant_secret,), "signed with the tenant's own secret"
    wrong = running_stack.api_key[:-4] + "xxxx"  # a key that almost matches, as a leaked-and-edited one
    async with httpx.AsyncClient(timeout=30) as http:
        for key in (wrong, "jrk_nothing_at-all-like-a-key-0000000"):
            answer = await http.get(
                f"{running_stack.url('projector')}/v1/jobs", headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 401
    file = keys.read()
    secrets = {
        "the API key": api_key,
        "the API key's secret part": api_key.split("_", 2)[2],
        "the stack's API key": running_stack.api_key,
        "a mistyped API key": wrong,
        "the operator's webhook secret": running_stack.stack.signing_secret(),
        "the tenant's webhook secret": tenant_secret,
        "the id secret": file.id_secret,
    }
    for service in running_stack.stack.services:
        text = running_stack.stack.log_file(service).read_text(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, f"the {service.name} logged nothing: the check would prove nothing"
        assert any(json.loads(line).get("event") for line in lines if line.startswith("{")), service.name
        for what, secret in secrets.items():
            assert secret not in text, f"{what} is in the {service.name}'s log"


def _opens(status_url: str, api_key: str) -> bool:
    response = httpx.get(f"{status_url}/v1/jobs", headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    return response.status_code == 200
