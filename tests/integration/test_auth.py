"""API keys and tenants, as a client sees them on a real intake and status projector over HTTP.

Keys are made and revoked with the real CLI (`jobrelay keys …`, a subprocess) while the services
run; the services re-read the shared key file, so the changes take effect within seconds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrelay.config.settings import AuthSettings, CorsSettings, KafkaSettings, TopicSettings
from jobrelay.intake.main import create_app as intake_app
from jobrelay.jobs.events import JobRequested
from jobrelay.projector.main import create_app as projector_app
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.sdk.identity import JOB_NAMESPACE
from tests.integration.intakeserver import intake_settings, ready, serving, wait_until
from tests.integration.processor.conftest import events
from tests.integration.projector.conftest import _serve
from tests.integration.projector.conftest import wait_until as wait_for_doc

pytestmark = pytest.mark.kafka


@dataclass
class Secured:
    """An intake and a projector in keys mode sharing one key file."""

    intake: str
    status: str
    keys_file: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JOBRELAY_AUTH_KEYS_FILE": str(self.keys_file), "COLUMNS": "200"}
        command = [sys.executable, "-m", "jobrelay.cli.main", "keys", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)

    def key(self, tenant: str, *scopes: str) -> str:
        options = [part for scope in scopes for part in ("--scope", scope)]
        made = self.cli("add", tenant, *options)
        assert made.returncode == 0, made.stderr
        return made.stdout.splitlines()[0].strip()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _start(
    stack: AsyncExitStack,
    kafka: KafkaSettings,
    topics: TopicSettings,
    tmp: Path,
    intake_overrides: dict[str, Any] | None = None,
    projector_overrides: dict[str, Any] | None = None,
    cors: CorsSettings | None = None,
) -> Secured:
    auth = AuthSettings(mode="keys", keys_file=tmp / "keys.json", reload_s=0.2)
    cors = cors or CorsSettings(origins=())
    defaults: dict[str, Any] = {"db_path": tmp / "view.sqlite", "lag_interval_s": 0.2, "catch_up_timeout_s": 20}
    settings = ProjectorSettings(**(defaults | (projector_overrides or {})))
    status = await _serve(stack, projector_app(settings, kafka, topics, auth=auth, cors=cors))
    intake_config = intake_settings(tmp, status_base_url=status, **(intake_overrides or {}))
    intake = stack.enter_context(serving(intake_app(intake_config, kafka, topics, auth, cors)))
    wait_until(lambda: ready(intake), 60, "intake ready")
    return Secured(intake, status, auth.keys_file)


@pytest.fixture
async def secured(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[Secured]:
    async with AsyncExitStack() as stack:
        yield await _start(stack, kafka_settings, topics, tmp_path)


@pytest.fixture
async def limited(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[Secured]:
    """Low limits: 1 submission per second per tenant (bursts of 3); 2 open streams per tenant, 3 in all."""
    async with AsyncExitStack() as stack:
        yield await _start(
            stack,
            kafka_settings,
            topics,
            tmp_path,
            {"submits_per_s": 1, "submits_burst": 3},
            {"max_streams_per_tenant": 2, "max_streams": 3},
        )


@pytest.fixture
async def browser_facing(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> AsyncIterator[Secured]:
    """CORS open to one origin, APP_ORIGIN."""
    async with AsyncExitStack() as stack:
        cors = CorsSettings(origins=(APP_ORIGIN,))
        yield await _start(stack, kafka_settings, topics, tmp_path, cors=cors)


APP_ORIGIN = "https://app.example.com"


def _job(**fields: Any) -> dict[str, Any]:
    return {"type": "demo.echo", "payload": {"n": 1}, **fields}


async def _eventually(probe: Callable[[], Any], expect: int, deadline: float = 5.0) -> float:
    """Seconds until `probe()` answers `expect` (failing after `deadline`)."""
    start = time.monotonic()
    while True:
        status = (await probe()).status_code
        if status == expect:
            return time.monotonic() - start
        assert time.monotonic() - start < deadline, f"still {status} after {deadline}s"
        await _pause()


async def _pause() -> None:
    await asyncio.sleep(0.1)  # the poll interval of a condition with a deadline


async def test_no_unknown_or_revoked_key_gets_401_and_a_read_only_key_cannot_submit(secured: Secured) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for url in (f"{secured.intake}/v1/jobs", f"{secured.status}/v1/jobs"):
            for headers in ({}, _bearer("jrk_0000_not-a-key-at-all-000000"), {"Authorization": "Basic eDp5"}):
                if url.startswith(secured.intake):
                    response = await http.post(url, json=_job(), headers=headers)
                else:
                    response = await http.get(url, headers=headers)
                assert response.status_code == 401, (url, headers, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.headers["content-type"] == "application/problem+json"
        reader = secured.key("acme", "read")
        refused = await http.post(f"{secured.intake}/v1/jobs", json=_job(), headers=_bearer(reader))
        assert refused.status_code == 403 and refused.json()["scope"] == "submit"
        assert (await http.get(f"{secured.status}/v1/jobs", headers=_bearer(reader))).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(f"{secured.status}{open_path}")).status_code in (200, 503)
            assert (await http.get(f"{secured.intake}{open_path}")).status_code == 200, open_path


async def test_a_key_works_within_5_s_of_being_added_and_stops_within_5_s_of_revoke(secured: Secured) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        key = secured.key("acme", "submit", "read")

        async def submit() -> httpx.Response:
            return await http.post(f"{secured.intake}/v1/jobs", json=_job(), headers=_bearer(key))

        async def read() -> httpx.Response:
            return await http.get(f"{secured.status}/v1/jobs", headers=_bearer(key))

        added = (await _eventually(submit, 202), await _eventually(read, 200))
        assert max(added) < 5
        key_id = key.removeprefix("jrk_").split("_")[0]
        listed = secured.cli("list", "--json")
        assert key_id in listed.stdout and key not in listed.stdout, "the list shows ids, never keys"
        assert key.split("_", 2)[2] not in secured.keys_file.read_text(), "only a hash is stored"
        assert secured.cli("revoke", key_id).returncode == 0
        revoked = (await _eventually(submit, 401), await _eventually(read, 401))
        assert max(revoked) < 5
        print(f"figure: key added -> works after {max(added):.2f} s; revoked -> 401 after {max(revoked):.2f} s")


async def test_a_tenant_sees_only_its_own_jobs_and_never_learns_of_others(
    secured: Secured, kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    a, b = secured.key("acme"), secured.key("globex")
    operator = secured.key("ops", "admin")
    async with httpx.AsyncClient(timeout=30) as http:
        accepted = await http.post(f"{secured.intake}/v1/jobs", json=_job(), headers=_bearer(a))
        assert accepted.status_code == 202
        job = accepted.json()["id"]
        async with httpx.AsyncClient(base_url=secured.status, headers=_bearer(a), timeout=30) as mine:
            seen = await wait_for_doc(mine, job, lambda doc: doc["status"] == "accepted")
        assert seen["id"] == job
        unknown = await http.get(f"{secured.status}/v1/jobs/{uuid.uuid4()}", headers=_bearer(b))
        for method, path in (
            ("GET", ""),
            ("GET", "/result"),
            ("GET", "/events"),
            ("DELETE", ""),
            ("POST", "/retry"),
        ):
            answer = await http.request(method, f"{secured.status}/v1/jobs/{job}{path}", headers=_bearer(b))
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["title"] == unknown.json()["title"], "exactly like a job that does not exist"
        listed_b = (await http.get(f"{secured.status}/v1/jobs", headers=_bearer(b))).json()["items"]
        listed_a = (await http.get(f"{secured.status}/v1/jobs", headers=_bearer(a))).json()["items"]
        everyone = (await http.get(f"{secured.status}/v1/jobs", headers=_bearer(operator))).json()["items"]
        assert job not in {i["id"] for i in listed_b} and job in {i["id"] for i in listed_a}
        assert job in {i["id"] for i in everyone}, "an operator key (admin) sees every tenant"
    (requested,) = await events(kafka_settings, topics.requested, expect=1)
    assert isinstance(requested, JobRequested) and requested.tenant == "acme", "the tenant is on the record"


async def test_the_same_idempotency_key_under_two_tenants_gives_two_unguessable_ids(secured: Secured) -> None:
    a, b = secured.key("acme"), secured.key("globex")
    async with httpx.AsyncClient(timeout=30) as http:
        ids = {}
        for name, key in (("acme", a), ("globex", b)):
            headers = {**_bearer(key), "Idempotency-Key": "order-42"}
            first = await http.post(f"{secured.intake}/v1/jobs", json=_job(), headers=headers)
            again = await http.post(f"{secured.intake}/v1/jobs", json=_job(), headers=headers)
            assert (first.status_code, again.status_code) == (202, 202)
            assert first.json()["id"] == again.json()["id"], "idempotent within a tenant"
            ids[name] = first.json()["id"]
    assert ids["acme"] != ids["globex"]
    for tenant, job_id in ids.items():
        for client in (tenant, "anonymous"):
            assert job_id != str(uuid.uuid5(JOB_NAMESPACE, f"{client}\norder-42")), "not computable without the secret"


async def test_a_burst_past_the_submit_rate_gets_429_until_its_retry_after_has_passed(limited: Secured) -> None:
    key, other = limited.key("acme"), limited.key("globex")
    async with httpx.AsyncClient(base_url=limited.intake, timeout=30) as http:
        answers = [await http.post("/v1/jobs", json=_job(), headers=_bearer(key)) for _ in range(5)]
        codes = [a.status_code for a in answers]
        assert codes[:3] == [202, 202, 202] and 429 in codes[3:], codes
        refused = next(a for a in answers if a.status_code == 429)
        wait = int(refused.headers["retry-after"])
        assert wait >= 1 and refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["limit"] == "submitting jobs"
        assert (await http.post("/v1/jobs", json=_job(), headers=_bearer(other))).status_code == 202, "per tenant"
        await asyncio.sleep(wait)  # waiting as told is the behaviour under test
        assert (await http.post("/v1/jobs", json=_job(), headers=_bearer(key))).status_code == 202
        print(f"figure: submit burst 1/s, burst 3 -> answers {codes}, Retry-After {wait} s, then 202")


async def test_open_streams_are_capped_per_tenant_and_in_all_and_free_up_when_they_close(limited: Secured) -> None:
    a, b = limited.key("acme"), limited.key("globex")
    async with httpx.AsyncClient(timeout=30) as http:
        jobs = {}
        for name, key in (("acme", a), ("globex", b)):
            accepted = await http.post(f"{limited.intake}/v1/jobs", json=_job(), headers=_bearer(key))
            jobs[name] = accepted.json()["id"]
        async with httpx.AsyncClient(base_url=limited.status, headers=_bearer(a), timeout=30) as mine:
            await wait_for_doc(mine, jobs["acme"], lambda doc: doc["status"] == "accepted")
        streams = AsyncExitStack()

        async def open_stream(key: str, job: str) -> httpx.Response:
            request = http.build_request("GET", f"{limited.status}/v1/jobs/{job}/events", headers=_bearer(key))
            response = await http.send(request, stream=True)
            if response.status_code == 200:
                streams.push_async_callback(response.aclose)
            else:
                await response.aread()
            return response

        async with streams:
            first, second = await open_stream(a, jobs["acme"]), await open_stream(a, jobs["acme"])
            assert (first.status_code, second.status_code) == (200, 200)
            third = await open_stream(a, jobs["acme"])
            assert third.status_code == 429 and int(third.headers["retry-after"]) > 0, "past the tenant's cap"
            poll = await http.get(
                f"{limited.status}/v1/jobs/{jobs['acme']}", headers={**_bearer(a), "Prefer": "wait=1"}
            )
            assert poll.status_code == 429, "a long-poll counts as a stream"
            assert (await open_stream(b, jobs["globex"])).status_code == 200, "the other tenant has its own cap"
            full = await open_stream(b, jobs["globex"])
            assert full.status_code == 503 and full.headers["retry-after"], "past the total"
        # every stream closed: the slots are free again (the server notices the disconnects)
        freed = await _eventually(lambda: open_stream(a, jobs["acme"]), 200, deadline=10)
        assert freed < 10
        tenant_wait = third.headers["retry-after"]
        print(f"figure: streams 2/tenant, 3 in all: 3rd 429 (Retry-After {tenant_wait}), 4th 503; free {freed:.2f} s")
        await streams.aclose()


def _preflight(origin: str, method: str, headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def test_cors_lets_only_the_configured_origin_call_the_apis_from_a_browser(browser_facing: Secured) -> None:
    key = browser_facing.key("web", "submit", "read", "cancel")
    async with httpx.AsyncClient(timeout=30) as http:
        submit_url = f"{browser_facing.intake}/v1/jobs"
        asked = _preflight(APP_ORIGIN, "POST", "authorization, idempotency-key")
        allowed = await http.options(submit_url, headers=asked)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        refused = await http.options(submit_url, headers=_preflight("https://evil.example", "POST"))
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

        origin = {"Origin": APP_ORIGIN}
        accepted = await http.post(submit_url, json=_job(), headers=_bearer(key) | origin)
        assert accepted.status_code == 202
        assert accepted.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "location" in accepted.headers["access-control-expose-headers"].lower()
        unauthenticated = await http.post(submit_url, json=_job(), headers=origin)
        assert unauthenticated.status_code == 401  # and the page may read why
        assert unauthenticated.headers["access-control-allow-origin"] == APP_ORIGIN

        job_url = accepted.json()["links"]["status"]
        cancel = await http.options(job_url, headers=_preflight(APP_ORIGIN, "DELETE", "authorization"))
        assert cancel.status_code == 200 and "DELETE" in cancel.headers["access-control-allow-methods"]
        status = await http.get(job_url, headers=_bearer(key) | origin)
        assert status.status_code == 200 and status.headers["access-control-allow-origin"] == APP_ORIGIN
        other = await http.get(job_url, headers=_bearer(key) | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers  # the browser hides the answer from that page


async def test_cors_is_off_by_default(secured: Secured) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for url in (f"{secured.intake}/v1/jobs", f"{secured.status}/v1/jobs"):
            preflight = await http.options(url, headers=_preflight(APP_ORIGIN, "POST"))
            assert "access-control-allow-origin" not in preflight.headers, url
            assert preflight.status_code in (401, 405), (url, preflight.status_code)
