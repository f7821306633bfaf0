"""Many jobs on one stream: `GET /v1/events` (SSE) and the WebSocket at `/v1/ws`, on the real projector."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jobrelay.config.settings import AuthSettings, CorsSettings, KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobRequested
from jobrelay.messaging.clients import EventProducer
from jobrelay.projector.main import create_app
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.security.keys import KeyFile, Scope
from tests.integration.projector.conftest import Start, _serve, job_of, life, wait_for_status

pytestmark = pytest.mark.kafka

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def _owned(events: list[Event], tenant: str) -> list[Event]:
    """A life whose request names `tenant`."""
    first = events[0]
    assert isinstance(first, JobRequested)
    return [replace(first, tenant=tenant), *events[1:]]


async def _sse(lines: AsyncIterator[str], count: int | None = None) -> list[dict[str, Any]]:
    """SSE events off a stream's lines, until `count` events or the end of the stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            current[key] = value.strip()
        elif line == "" and current.get("event"):
            events.append({"id": int(current["id"]), "event": current["event"], "data": json.loads(current["data"])})
            current = {}
            if count is not None and len(events) >= count:
                break
        elif line == "":
            current = {}
    return events


async def _publish_all(publisher: EventProducer, lives: list[list[Event]], step: int) -> None:
    for events in lives:
        await publisher.publish(events[step])


async def test_one_sse_stream_follows_many_jobs_to_their_ends_and_resumes_with_last_event_id(
    start_projector: Start, publisher: EventProducer
) -> None:
    client = await start_projector()
    lives = [life() for _ in range(5)]
    ids = [job_of(events) for events in lives]
    await _publish_all(publisher, lives, 0)
    for job in ids:
        await wait_for_status(client, job, "accepted")
    query = "&".join(f"job={job}" for job in ids)
    async with client.stream("GET", f"/v1/events?{query}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        snapshot = await _sse(lines, 5)
        await _publish_all(publisher, lives, 1)  # every job starts
        started = await _sse(lines, 5)
    assert sorted(e["data"]["id"] for e in snapshot) == sorted(ids), "each job's current document first"
    assert {e["data"]["status"] for e in snapshot} == {"accepted"}
    assert sorted(e["data"]["id"] for e in started) == sorted(ids) and {e["data"]["status"] for e in started} == {
        "running"
    }
    assert all(e["event"] == "status" for e in snapshot + started)
    last = started[-1]["id"]
    assert [e["id"] for e in started] == sorted(e["id"] for e in started), "ids increase across jobs"

    await _publish_all(publisher, lives, 2)  # while nobody listens: half way
    await _publish_all(publisher, lives, 3)  # and done
    for job in ids:
        await wait_for_status(client, job, "succeeded")
    async with client.stream("GET", f"/v1/events?{query}", headers={"Last-Event-ID": str(last)}) as response:
        rest = await _sse(response.aiter_lines())  # ends by itself: every job is over
    assert all(e["id"] > last for e in rest), "nothing seen before the reconnect came again"
    finals = {e["data"]["id"]: e["data"]["status"] for e in rest}
    assert finals == dict.fromkeys(ids, "succeeded"), "every job's end, after the reconnect"
    assert len(rest) == len(ids), "the missed changes of each job conflated into its latest document, once"
    after_end = await client.get(f"/v1/events?{query}", headers={"Last-Event-ID": str(rest[-1]["id"])})
    assert after_end.status_code == 204, "every end seen: EventSource stops"


async def test_the_tenant_stream_follows_every_job_of_the_tenant_and_only_those(
    start_projector: Start, publisher: EventProducer
) -> None:
    client = await start_projector()
    mine = [_owned(life(), "acme") for _ in range(3)]
    theirs = _owned(life(), "globex")
    acme = {"X-Client-Id": "acme"}
    async with client.stream("GET", "/v1/events", headers=acme) as response:
        lines = response.aiter_lines()
        (opened,) = await _sse(lines, 1)
        assert opened["event"] == "open" and opened["id"] == opened["data"]["change"]
        for lived in [*mine, theirs]:
            for step in lived:
                await publisher.publish(step)
        seen: dict[str, str] = {}
        ids: list[int] = []
        while set(seen) != {job_of(e) for e in mine} or set(seen.values()) != {"succeeded"}:
            (event,) = await asyncio.wait_for(_sse(lines, 1), 30)
            seen[event["data"]["id"]] = event["data"]["status"]
            ids.append(event["id"])
    assert job_of(theirs) not in seen, "another tenant's job never shows"
    assert ids == sorted(ids) and len(ids) == len(set(ids)) and ids[0] > opened["id"]
    async with httpx.AsyncClient(base_url=client.base_url, headers={"X-Client-Id": "globex"}) as other:
        await wait_for_status(other, job_of(theirs), "succeeded")
    async with client.stream("GET", "/v1/events", headers={**acme, "Last-Event-ID": str(opened["id"])}) as response:
        lines = response.aiter_lines()
        resumed: dict[str, str] = {}
        while len(resumed) < 3:
            (again,) = await asyncio.wait_for(_sse(lines, 1), 30)
            if again["event"] == "status":
                resumed[again["data"]["id"]] = again["data"]["status"]
    assert resumed == dict.fromkeys((job_of(e) for e in mine), "succeeded"), "resumed from the open event"


async def test_the_many_job_stream_refuses_unknown_and_malformed_ids(start_projector: Start) -> None:
    client = await start_projector(max_followed_jobs=2)
    unknown = await client.get(f"/v1/events?job={uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    malformed = await client.get("/v1/events?job=not-a-uuid")
    assert malformed.status_code == 422 and "job" in malformed.text
    many = await client.get("/v1/events?" + "&".join(f"job={uuid.uuid4()}" for _ in range(3)))
    assert many.status_code == 422 and many.json()["field"] == "job"


# --- WebSocket -------------------------------------------------------------------------------------

Open = Callable[..., Awaitable[ClientConnection]]


class Keyed:
    """A projector in API-key mode, with a way to make keys and open WebSockets to it."""

    def __init__(self, base: str, keys: KeyFile, stack: AsyncExitStack) -> None:
        self.base, self.keys, self._stack = base, keys, stack
        self.ws_url = base.replace("http", "ws", 1) + "/v1/ws"

    def key(self, tenant: str) -> str:
        return self.keys.add(tenant, (Scope.READ,))[0]

    async def open(self, key: str | None = None, *, subprotocols: list[str] | None = None) -> ClientConnection:
        """A connection (authenticated with `key` by its first message when given)."""
        offered: Any = subprotocols
        connection = await self._stack.enter_async_context(connect(self.ws_url, subprotocols=offered))
        if key is not None:
            await connection.send(json.dumps({"type": "auth", "token": key}))
            ready = await _next(connection)
            assert ready["type"] == "ready", ready
        return connection


@pytest.fixture
async def keyed(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[Keyed]:
    auth = AuthSettings(mode="keys", keys_file=tmp_path / "keys.json", reload_s=0.001)  # a new key counts at once
    settings = ProjectorSettings(
        db_path=tmp_path / "view.sqlite",
        lag_interval_s=0.2,
        catch_up_timeout_s=20,
        ws_auth_timeout_s=1,
        max_followed_jobs=60,
    )
    async with AsyncExitStack() as stack:
        base = await _serve(stack, create_app(settings, kafka_settings, topics, auth=auth, cors=CorsSettings()))
        yield Keyed(base, KeyFile(auth.keys_file), stack)


async def _next(connection: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(connection.recv(), timeout))
    return message


async def _statuses_until(
    connection: ClientConnection, jobs: set[str], seen: dict[str, list[int]], finals: dict[str, str], stop: int
) -> None:
    """Read status messages into `seen` (sequences per job) until `stop` messages or every job is over."""
    for _ in range(stop):
        if set(finals) >= jobs and all(finals[j] in TERMINAL for j in jobs):
            return
        message = await _next(connection)
        if message["type"] != "status":
            continue
        assert message["document"]["id"] == message["job"] and message["status"] == message["document"]["status"]
        seen.setdefault(message["job"], []).append(message["sequence"])
        finals[message["job"]] = message["status"]


async def test_one_websocket_follows_fifty_jobs_each_update_once_in_order_and_resumes_after_a_drop(
    keyed: Keyed, publisher: EventProducer
) -> None:
    key = keyed.key("acme")
    lives = [_owned(life(), "acme") for _ in range(50)]
    ids = {job_of(events) for events in lives}
    await _publish_all(publisher, lives, 0)
    first = await keyed.open(key)
    await first.send(json.dumps({"type": "subscribe", "jobs": sorted(ids)}))
    seen: dict[str, list[int]] = {}
    finals: dict[str, str] = {}
    subscribed = await _next(first)
    assert subscribed["type"] == "subscribed" and set(subscribed["jobs"]) == ids
    await _statuses_until(first, ids, seen, finals, 50)
    assert set(finals) == ids and set(finals.values()) == {"accepted"}, "each job's current status at once"
    await _publish_all(publisher, lives, 1)
    await _statuses_until(first, ids, seen, finals, 50)
    await first.close()  # dropped mid-way: every job running, none over

    await _publish_all(publisher, lives, 2)
    await _publish_all(publisher, lives, 3)
    again = await keyed.open(key)
    after = {job: sequences[-1] for job, sequences in seen.items()}
    await again.send(json.dumps({"type": "subscribe", "jobs": sorted(ids), "after": after}))
    assert (await _next(again))["type"] == "subscribed"
    await _statuses_until(again, ids, seen, finals, 500)
    assert finals == dict.fromkeys(ids, "succeeded"), "every job reached its end on the reopened connection"
    for job, sequences in seen.items():
        assert sequences == sorted(set(sequences)), f"{job}: an update repeated or out of order: {sequences}"


async def test_a_websocket_without_a_valid_key_is_refused(keyed: Keyed) -> None:
    silent = await keyed.open()
    refused = await _next(silent)
    assert refused["type"] == "error" and refused["status"] == 401
    with pytest.raises(ConnectionClosed) as closed:
        await silent.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, "closed after the auth timeout"

    wrong = await keyed.open()
    await wrong.send(json.dumps({"type": "auth", "token": "jr_nope_nope"}))
    assert (await _next(wrong))["status"] == 401
    skipping = await keyed.open()
    await skipping.send(json.dumps({"type": "subscribe", "jobs": [str(uuid.uuid4())]}))
    assert (await _next(skipping))["status"] == 401, "nothing before auth"
    for connection in (wrong, skipping):
        with pytest.raises(ConnectionClosed):
            await connection.recv()


async def test_a_browser_authenticates_by_subprotocol_and_another_tenants_job_looks_unknown(
    keyed: Keyed, publisher: EventProducer
) -> None:
    acme, globex = keyed.key("acme"), keyed.key("globex")
    events = _owned(life(), "acme")
    job = job_of(events)
    for event in events:
        await publisher.publish(event)
    browser = await keyed.open(subprotocols=["jobrelay.v1", f"bearer.{globex}"])
    assert browser.subprotocol == "jobrelay.v1", "the key is never echoed back"
    assert (await _next(browser))["type"] == "ready"
    await browser.send(json.dumps({"type": "subscribe", "jobs": [job]}))
    other = await _next(browser)
    assert (await _next(browser)) == {"type": "subscribed", "jobs": [], "all": False}
    await browser.send(json.dumps({"type": "subscribe", "jobs": [str(uuid.uuid4())]}))
    unknown = await _next(browser)
    assert (await _next(browser)) == {"type": "subscribed", "jobs": [], "all": False}
    assert other["type"] == unknown["type"] == "error" and other["status"] == unknown["status"] == 404
    assert other["title"] == unknown["title"], "another tenant's job: exactly like one that does not exist"

    owner = await keyed.open(acme)
    await owner.send(json.dumps({"type": "subscribe", "jobs": [job]}))
    assert (await _next(owner))["jobs"] == [job]
    status = await _next(owner)
    assert status["type"] == "status" and status["job"] == job and status["document"]["id"] == job


async def test_bad_messages_get_errors_naming_the_field_and_the_connection_stays_open(keyed: Keyed) -> None:
    connection = await keyed.open(keyed.key("acme"))
    await connection.send("{not json")
    assert (await _next(connection))["status"] == 422
    await connection.send(json.dumps({"type": "subscribe", "jobs": ["not-a-uuid"]}))
    bad = await _next(connection)
    assert bad["status"] == 422 and bad["field"].startswith("subscribe.jobs")
    await connection.send(json.dumps({"type": "subscribe", "jobs": [str(uuid.uuid4()) for _ in range(61)]}))
    capped = await _next(connection)
    assert capped["status"] == 422 and capped["field"] == "jobs" and len(capped["jobs"]) == 1, "past the cap"
    started = time.monotonic()
    await connection.send(json.dumps({"type": "ping"}))
    while (await _next(connection))["type"] != "pong":
        assert time.monotonic() - started < 60, "no pong"
