"""A real webhook receiver on 127.0.0.1 that checks every delivery with the `standardwebhooks` library.

Each path follows a script of answers (the last one repeats): a status code, or HANG to never
answer (until released, so the test's teardown is quick).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HANG = -1
Answer = int | tuple[int, dict[str, str]]


@dataclass
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    verified_with: tuple[str, ...]

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Scripted answers per path, and every request it got."""

    secrets: Sequence[str]
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    got: list[Delivery] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_progress: int = 0
    max_in_progress: int = 0
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.got if d.path == path]

    def verified(self, body: bytes, headers: dict[str, str]) -> tuple[str, ...]:
        """The secrets whose signature `standardwebhooks` accepts."""
        ok = []
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                ok.append(secret)
        return tuple(ok)

    def _answer(self, path: str, seen: int) -> Answer:
        script = self.scripts.get(path, [200])
        return script[min(seen, len(script) - 1)]

    async def handle(self, request: Request) -> Response:
        body, headers = await request.body(), dict(request.headers)
        answer = self._answer(request.url.path, len(self.at(request.url.path)))
        status, extra = answer if isinstance(answer, tuple) else (answer, {})
        delivery = Delivery(
            request.url.path, headers, body, None if status == HANG else status, self.verified(body, headers)
        )
        self.got.append(delivery)
        if status == HANG:
            return await self._hang()
        return Response(status_code=status, headers=extra)

    async def _hang(self) -> Response:
        self.in_progress += 1
        self.max_in_progress = max(self.max_in_progress, self.in_progress)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 60)
            return Response(status_code=200)
        finally:
            self.in_progress -= 1


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl+C to pytest


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve `receiver` on an ephemeral port of 127.0.0.1 until the block exits."""
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):  # startup takes milliseconds; give up after ~10 s
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError("the test receiver did not start")
        yield receiver
    finally:
        receiver.release.set()
        server.should_exit = True
        await task
        sock.close()
