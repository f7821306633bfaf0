"""`/v1/ws`: one WebSocket watches any number of jobs (protocol in the README, "WebSocket").

Messages are JSON objects with a `type`. The client authenticates first — with its first
message `{"type": "auth", "token": KEY}`, or by offering the subprotocol `bearer.KEY` beside
`jobrelay.v1` (a browser cannot set an Authorization header on a WebSocket; the key never goes
in the URL) — then subscribes by job id (`after` resumes each job from the version it saw) or
to every job of its tenant (`all`, resumed from a change number). The server answers each
subscribed job's current status at once and then every change, each version once and in order,
from one task per connection, so nothing it sends can overtake anything else. Another tenant's
job gets the same error as an unknown one. uvicorn pings the client (protocol pings) and drops
it when it stops answering; `{"type": "ping"}` gets `{"type": "pong"}` for clients that want
their own keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from jobrelay.http.auth import require
from jobrelay.http.problems import Problem
from jobrelay.projector.api import Context, find_for
from jobrelay.projector.follow import Follower
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.store.rows import JobRow
from jobrelay.security.keys import Principal, Scope

__all__ = ["PROTOCOL", "ws_router"]

log = structlog.get_logger("jobrelay.projector.ws")

PROTOCOL = "jobrelay.v1"
_BEARER = "bearer."
UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 4401, 4403, 1013  # close codes (4xxx: the application's own)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(_Message):
    """The first message when the subprotocol carried no key."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=512)


class Subscribe(_Message):
    """Follow jobs by id (resuming each from `after`) and/or every job of the tenant (`all`)."""

    type: Literal["subscribe"]
    jobs: list[uuid.UUID] = Field(default_factory=list)
    after: dict[uuid.UUID, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    all: bool = False
    after_change: int | None = Field(default=None, ge=0)


class Unsubscribe(_Message):
    """Stop following jobs, and/or every job (`all`)."""

    type: Literal["unsubscribe"]
    jobs: list[uuid.UUID] = Field(default_factory=list)
    all: bool = False


class Ping(_Message):
    """An application-level keep-alive; answered with `pong`."""

    type: Literal["ping"]


ClientMessage = Annotated[Auth | Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)

Draw = Callable[[JobRow, str], dict[str, Any]]


def error(problem: Problem, **more: Any) -> dict[str, Any]:
    """An `error` message: the problem's fields (RFC 9457) and what it concerns."""
    body = {"type": "error", "problem": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    return body | problem.extensions | more


def _invalid(exc: ValidationError) -> Problem:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "message"
    return Problem(422, "Invalid message", f"{field}: {first['msg']}", field=field)


async def _receive(websocket: WebSocket) -> str:
    """The next text message (a binary one is decoded as UTF-8 JSON text); WebSocketDisconnect when gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        return bytes(message.get("bytes") or b"").decode("utf-8", errors="replace")
    return str(text)


def _offered_key(websocket: WebSocket) -> str | None:
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(_BEARER):
            return str(offered[len(_BEARER) :])
    return None


class Connection:
    """One client: who it is, what it follows, and the one loop that reads and sends."""

    def __init__(self, websocket: WebSocket, context: Context, draw: Draw) -> None:
        self.websocket, self.context = websocket, context
        base = context.settings.public_base_url or str(websocket.base_url).replace("ws", "http", 1)
        self.base = base.rstrip("/")
        self.draw = draw

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message."""
        await self.websocket.send_json(message)

    async def authenticate(self) -> Principal | None:
        """The caller (accepting the connection), or None after closing it with the reason."""
        websocket, auth = self.websocket, self.context.auth
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        try:
            if auth.gateway:
                return require(auth.principal({k.lower(): v for k, v in websocket.headers.items()}), Scope.READ)
            key = _offered_key(websocket) or await self._first_message_key()
            return require(auth.principal({"authorization": f"Bearer {key}"}), Scope.READ)
        except Problem as problem:
            await self.send(error(problem))
            await websocket.close(code=FORBIDDEN if problem.status == 403 else UNAUTHORIZED, reason=problem.title)
            return None

    async def _first_message_key(self) -> str:
        timeout = self.context.settings.ws_auth_timeout_s
        try:
            text = await asyncio.wait_for(_receive(self.websocket), timeout)
            message = _MESSAGES.validate_json(text)
        except TimeoutError:
            raise Problem(401, "Unauthorized", f"no auth message within {timeout:g} s") from None
        except ValidationError as exc:
            raise Problem(401, "Unauthorized", f"the first message must be auth: {_invalid(exc).detail}") from None
        if not isinstance(message, Auth):
            raise Problem(401, "Unauthorized", 'the first message must be {"type": "auth", "token": KEY}')
        return message.token

    async def run(self, runtime: Runtime, caller: Principal) -> None:
        """Read messages and send changes until the client goes away or the server stops."""
        with runtime.hub.follow() as follow:
            follower = Follower(runtime, caller, follow, cursor=await runtime.store.head())
            await self.send({"type": "ready", "tenant": caller.tenant, "change": follower.cursor})
            log.debug("websocket open", tenant=caller.tenant, key_id=caller.key_id)
            receiving = asyncio.ensure_future(_receive(self.websocket))
            try:
                while True:
                    changed = asyncio.ensure_future(follow.flag.wait())
                    done, _ = await asyncio.wait({receiving, changed}, return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                    if receiving in done:
                        await self.handle(receiving.result(), follower)
                        receiving = asyncio.ensure_future(_receive(self.websocket))
                    follow.flag.clear()
                    for row in await follower.changed():
                        await self.send(self.status(row, row.change))
            finally:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await receiving

    async def handle(self, text: str, follower: Follower) -> None:
        """Act on one client message (errors are sent back; the connection stays open)."""
        try:
            message = _MESSAGES.validate_json(text)
            if isinstance(message, Subscribe):
                await self.subscribe(message, follower)
            elif isinstance(message, Unsubscribe):
                follower.forget([str(j) for j in message.jobs])
                follower.follow.everything = follower.follow.everything and not message.all
                await self.send({"type": "unsubscribed", "jobs": [str(j) for j in message.jobs], "all": message.all})
            elif isinstance(message, Ping):
                await self.send({"type": "pong"})
            else:
                raise Problem(422, "Invalid message", "already authenticated", field="type")
        except ValidationError as exc:
            await self.send(error(_invalid(exc)))
        except Problem as problem:
            await self.send(error(problem))

    async def subscribe(self, message: Subscribe, follower: Follower) -> None:
        """Follow the jobs: each one's status at once (when newer than `after`), then every change."""
        self.context.reads.take(follower.caller.key_id or follower.caller.tenant)  # one read per subscribe
        ids = [str(j) for j in dict.fromkeys(message.jobs) if str(j) not in follower.sent]
        cap = self.context.settings.max_followed_jobs
        room = cap - len(follower.sent)
        if len(ids) > room:
            await self.send(error(Problem(422, "Too many subscriptions", f"at most {cap} per connection",
                                          field="jobs", limit=cap), jobs=ids[room:]))  # fmt: skip
            ids = ids[:room]
        runtime = follower.runtime
        found: list[JobRow] = []
        for job_id in ids:
            try:
                found.append(await find_for(runtime, job_id, follower.caller))
            except Problem as problem:  # unknown and another tenant's alike
                await self.send(error(problem, job=job_id))
        after = {str(j): version for j, version in message.after.items()}
        if message.all and not follower.follow.everything:
            follower.follow.everything = True
            if message.after_change is not None:
                follower.cursor = min(follower.cursor, message.after_change)
        await self.send({"type": "subscribed", "jobs": [r.job_id for r in found], "all": follower.follow.everything})
        for row in follower.name(found, after):
            await self.send(self.status(row, follower.cursor))

    def status(self, row: JobRow, change: int) -> dict[str, Any]:
        """A `status` message: the job's whole status document, its version and change number."""
        document = self.draw(row, self.base)
        return {
            "type": "status",
            "job": row.job_id,
            "sequence": row.version,
            "change": change,
            "status": document["status"],
            "document": document,
        }


def ws_router(context: Context, draw: Draw) -> APIRouter:
    """The WebSocket route bound to `context`."""
    router = APIRouter()

    @router.websocket("/v1/ws")
    async def watch(websocket: WebSocket) -> None:
        connection = Connection(websocket, context, draw)
        caller = await connection.authenticate()
        if caller is None:
            return
        try:
            runtime = context.get()
            context.streams.acquire(caller.tenant)
        except Problem as problem:
            await connection.send(error(problem))
            await websocket.close(code=UNAVAILABLE if problem.status == 503 else 4429, reason=problem.title)
            return
        try:
            await connection.run(runtime, caller)
        except WebSocketDisconnect:
            pass
        finally:
            context.streams.release(caller.tenant)

    return router
