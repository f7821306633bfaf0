"""`GET /v1/jobs/{id}/events`: the job's view changes as Server-Sent Events.

Each event is the job's whole status document (`event: status`), with the view's change counter
as its id. A client that reconnects with `Last-Event-ID` gets only what changed after it (the
current document, when it is newer), never a repeat; the stream ends after the terminal event,
and a reconnect after that answers 204, which tells EventSource to stop. Changes that happen
between two sends are conflated into the latest document.
"""

import asyncio
import contextlib
import json
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse

from jobrelay.jobs.state import JobStatus
from jobrelay.projector.api import AUTH_RESPONSES, BEARER, Context, find_for
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.store.rows import JobRow
from jobrelay.security.keys import Principal

__all__ = ["events_router", "held_until_done", "sse"]


def sse(data: dict[str, Any], *, event: str, event_id: int | None = None, retry_ms: int | None = None) -> bytes:
    """One Server-Sent Event."""
    lines = [f"retry: {retry_ms}"] if retry_ms is not None else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


def _last_id(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0  # a malformed id is treated as none: the client gets the current document


def events_router(context: Context, draw: Callable[[JobRow, Request], dict[str, Any]]) -> APIRouter:
    """The SSE route bound to `context`; `draw` renders a row."""
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(BEARER)], responses=AUTH_RESPONSES)

    @router.get("/{job_id}/events", summary="The job's changes as Server-Sent Events (Last-Event-ID resumes)")
    async def job_events(
        job_id: uuid.UUID,
        request: Request,
        runtime: Annotated[Runtime, Depends(context.get)],
        caller: Annotated[Principal, Depends(context.reader)],
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        row = await find_for(runtime, str(job_id), caller)
        after = _last_id(last_event_id)
        if row.state.status.terminal and row.version <= after:
            return Response(status_code=204)  # the client saw the end already
        context.streams.acquire(caller.tenant)  # 429/503 past the caps; given back when the stream ends
        stream = _changes(runtime, str(job_id), after, lambda r: draw(r, request), context.settings.sse_ping_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        held = held_until_done(stream, lambda: context.streams.release(caller.tenant))
        return StreamingResponse(held, media_type="text/event-stream", headers=headers)

    return router


def _once(release: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def call() -> None:
        if not done:
            done.append(True)
            release()

    return call


def held_until_done(stream: AsyncIterator[bytes], release: Callable[[], None]) -> AsyncIterator[bytes]:
    """`stream`, then `release` (once) however it ends (done, client gone, server stopping, or never started)."""
    release = _once(release)

    async def run() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            release()

    iterator = run()
    weakref.finalize(iterator, release)  # a response never sent never starts it: release when it is dropped
    return iterator


async def _changes(
    runtime: Runtime, job_id: str, after: int, draw: Callable[[JobRow], dict[str, Any]], ping_s: float
) -> AsyncIterator[bytes]:
    """Send each newer version of the job until its terminal one; ping while nothing changes."""
    first = True
    with runtime.hub.watch(job_id) as changed:
        while True:
            changed.clear()
            row = await runtime.store.get(job_id)
            if row is None:  # purged while streaming
                yield sse({"id": job_id, "status": "purged"}, event="purged")
                return
            if row.version > after:
                yield sse(draw(row), event="status", event_id=row.version, retry_ms=2000 if first else None)
                after, first = row.version, False
                if JobStatus(row.state.status).terminal:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), ping_s)
            if not changed.is_set():
                yield b": ping\n\n"
