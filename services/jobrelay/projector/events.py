"""`GET /v1/events`: many jobs' changes on one Server-Sent Events stream.

`?job=ID&job=ID…` follows those jobs: first each one's current document, then every change,
until every one of them is over (a reconnect after that answers 204). Without `job` the stream
follows every job of the caller's tenant (every tenant's for an operator key) from now on; its
first event, `open`, carries the change number to resume from, so a client that lists the jobs
after connecting misses nothing. Events are the per-job stream's (`event: status`, the whole
status document); their id is the view's change number, increasing across jobs, so a reconnect
with `Last-Event-ID` resumes after the last event seen without a loss or a repeat.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from jobrelay.http.problems import Problem
from jobrelay.projector.api import AUTH_RESPONSES, BEARER, Context, find_for
from jobrelay.projector.follow import Follower, is_terminal
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.stream import held_until_done, sse
from jobrelay.security.keys import Principal

__all__ = ["Draw", "many_events_router"]

Draw = Callable[[JobRow, str], dict[str, Any]]
"""Renders a row given the base URL of its links."""

_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    204: {"description": "Every listed job is over and the client saw its last change (EventSource stops)."},
    404: {"description": "A listed job is unknown, or another tenant's.", "content": _PROBLEM},
    422: {"description": "A `job` is not a UUID, or more are listed than the cap.", "content": _PROBLEM},
}


def _cursor(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # a malformed id is treated as none: the stream starts afresh


def many_events_router(context: Context, draw: Draw) -> APIRouter:
    """The many-job SSE route bound to `context`."""
    router = APIRouter(tags=["jobs"], dependencies=[Depends(BEARER)], responses=AUTH_RESPONSES)

    @router.get(
        "/v1/events",
        summary="Many jobs' changes as Server-Sent Events (?job=ID… or every job of the tenant; Last-Event-ID)",
        responses=_RESPONSES,
        response_class=StreamingResponse,
    )
    async def many_events(
        request: Request,
        runtime: Annotated[Runtime, Depends(context.get)],
        caller: Annotated[Principal, Depends(context.reader)],
        job: Annotated[
            list[uuid.UUID] | None, Query(description="A job to follow (repeatable); none: every job")
        ] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        ids = list(dict.fromkeys(str(j) for j in job or ()))
        cap = context.settings.max_followed_jobs
        if len(ids) > cap:
            raise Problem(422, "Too many jobs", f"at most {cap} `job` parameters", field="job", limit=cap)
        rows = await asyncio.gather(*(find_for(runtime, i, caller) for i in ids))  # 404 for any unknown
        after = _cursor(last_event_id)
        over = bool(ids) and after is not None and all(map(is_terminal, rows))
        if over and after is not None and not await runtime.store.changes(after, job_ids=ids, limit=1):
            return Response(status_code=204)  # the client saw every end already
        context.streams.acquire(caller.tenant)  # 429/503 past the caps; given back when the stream ends
        base = context.base(request)
        stream = _stream(runtime, caller, ids, after, lambda r: draw(r, base), context.settings.sse_ping_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        held = held_until_done(stream, lambda: context.streams.release(caller.tenant))
        return StreamingResponse(held, media_type="text/event-stream", headers=headers)

    return router


async def _stream(
    runtime: Runtime,
    caller: Principal,
    ids: list[str],
    after: int | None,
    draw: Callable[[JobRow], dict[str, Any]],
    ping_s: float,
) -> AsyncIterator[bytes]:
    """The events: the snapshot (or `open`), then each change; ends when every listed job is over."""
    with runtime.hub.follow() as follow:
        follow.everything = not ids
        follower = Follower(runtime, caller, follow, cursor=await runtime.store.head() if after is None else after)
        yield b"retry: 2000\n\n"
        loaded = await runtime.store.load(ids)  # read after the cursor was taken: nothing falls in between
        open_jobs = {i for i, row in loaded.rows.items() if not is_terminal(row)}
        for gone in (i for i in ids if i not in loaded.rows):
            yield sse({"id": gone, "status": "purged"}, event="purged")  # purged since the request came in
        if not ids:
            yield sse({"change": follower.cursor}, event="open", event_id=follower.cursor)
        elif after is None:
            for row in follower.name(loaded.rows[i] for i in ids if i in loaded.rows):
                yield sse(draw(row), event="status", event_id=follower.cursor)
        else:
            follower.resume(loaded.rows)
        while True:
            follow.flag.clear()
            for row in await follower.changed():
                yield sse(draw(row), event="status", event_id=row.change)
                if is_terminal(row):
                    open_jobs.discard(row.job_id)
            if ids and not open_jobs:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(follow.flag.wait(), ping_s)
            if not follow.flag.is_set():
                yield b": ping\n\n"
