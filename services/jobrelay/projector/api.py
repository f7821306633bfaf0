"""The query API: a job's status (ETag, long-poll), its result, the job list.

The SSE stream lives in `stream.py`. Errors are problem+json naming what was wrong.
"""

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from jobrelay.http.problems import TYPE_BASE, Problem
from jobrelay.jobs.state import JobStatus, status_at
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store.base import Cursor, JobQuery
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.views import decode_cursor, encode_cursor, etag, links, render, result_value

__all__ = ["Context", "find", "jobs_router", "parse_wait"]

StatusName = Literal["accepted", "running", "retrying", "stalled", "succeeded", "failed", "cancelled", "expired"]
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class Context:
    """What the handlers need: the settings and the running runtime (set by the lifespan)."""

    def __init__(self, settings: ProjectorSettings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None

    def get(self) -> Runtime:
        """The runtime, or 503 while the service is starting."""
        if self.runtime is None:
            raise Problem(503, "Starting", "the projector is starting", headers={"Retry-After": "1"})
        return self.runtime

    def base(self, request: Request) -> str:
        """The base of the links we hand out."""
        return (self.settings.public_base_url or str(request.base_url)).rstrip("/")


def parse_wait(prefer: str | None, cap: float) -> float | None:
    """The `wait` preference of a `Prefer` header (RFC 7240), capped; None when absent or malformed."""
    match = _WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else None


async def find(runtime: Runtime, job_id: str) -> JobRow:
    """The job's row; a truthful 404 (after catching up with its partition), 410 when purged."""
    row = await runtime.store.get(job_id)
    if row is not None:
        return row
    if await runtime.store.purged_at(job_id) is None:
        if not await runtime.catch_up(job_id):
            raise Problem(
                503,
                "View catching up",
                "the view is behind the job's partition; retry shortly",
                type_=f"{TYPE_BASE}catching-up",
                headers={"Retry-After": "1"},
            )
        row = await runtime.store.get(job_id)
        if row is not None:
            return row
    purged = await runtime.store.purged_at(job_id)
    if purged is not None:
        raise Problem(
            410,
            "Job purged",
            f"job {job_id} finished and was purged after its retention",
            type_=f"{TYPE_BASE}job-purged",
            purged_at=purged.isoformat(),
        )
    raise Problem(404, "Job not found", f"no job {job_id}", type_=f"{TYPE_BASE}job-not-found")


def jobs_router(context: Context) -> APIRouter:
    """`/v1/jobs…` routes bound to `context`."""
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
    runtime_dep = Annotated[Runtime, Depends(context.get)]
    settings = context.settings

    def now() -> datetime:
        return datetime.now(UTC)

    def document(row: JobRow, request: Request) -> dict[str, Any]:
        return render(row, now=now(), stall_after=settings.stall_after, base=context.base(request))

    @router.get("/{job_id}", summary="A job's status (ETag, If-None-Match, Prefer: wait=N)")
    async def get_job(
        job_id: uuid.UUID,
        request: Request,
        runtime: runtime_dep,
        if_none_match: Annotated[str | None, Header()] = None,
        prefer: Annotated[str | None, Header()] = None,
    ) -> Response:
        wait = parse_wait(prefer, settings.max_wait_s)
        with runtime.hub.watch(str(job_id)) as changed:
            row = await find(runtime, str(job_id))
            body = document(row, request)
            first = etag(body)

            def unchanged(current: dict[str, Any]) -> bool:
                tag = etag(current)
                return _matches(if_none_match, tag) if if_none_match is not None else tag == first

            if wait:
                body = await _long_poll(runtime, row, body, unchanged, wait, changed, lambda r: document(r, request))
        return _status_response(body, if_none_match, wait, settings.retry_after_s)

    @router.get("/{job_id}/result", summary="The result (200), 303 to the status while running, 409 if not succeeded")
    async def get_result(job_id: uuid.UUID, request: Request, runtime: runtime_dep) -> Response:
        row = await find(runtime, str(job_id))
        status = status_at(row.state, now(), settings.stall_after)
        if not status.terminal:
            location = links(context.base(request), str(job_id))["self"]
            headers = {"Location": location, "Retry-After": str(settings.retry_after_s)}
            return Response(status_code=303, headers=headers)
        outcome = row.state.outcome
        if status is not JobStatus.SUCCEEDED or outcome is None:
            raise _not_succeeded(document(row, request))
        if outcome.result is None:
            return Response(status_code=204)
        value = result_value(outcome.result)
        return PlainTextResponse(value) if isinstance(value, str) else JSONResponse(value)

    @router.get("", summary="Jobs, newest first, filtered, with cursor pagination")
    async def list_jobs(
        request: Request,
        runtime: runtime_dep,
        status: Annotated[list[StatusName] | None, Query(description="repeat for several")] = None,
        type: Annotated[list[str] | None, Query(description="job type; repeat for several")] = None,
        created_after: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
        created_before: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        size = limit or settings.page_size
        query = JobQuery(
            now=now(),
            stall_after=settings.stall_after,
            limit=size + 1,
            after=_cursor(cursor),
            statuses=frozenset(JobStatus(s.upper()) for s in status or ()),
            types=frozenset(type or ()),
            created_after=_aware(created_after),
            created_before=_aware(created_before),
        )
        rows = await runtime.store.query(query)
        page = rows[:size]
        next_cursor = _next(page) if len(rows) > size else None
        next_link = str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
        return {
            "items": [document(r, request) for r in page],
            "next_cursor": next_cursor,
            "links": {"self": str(request.url), "next": next_link},
        }

    return router


async def _long_poll(
    runtime: Runtime,
    row: JobRow,
    body: dict[str, Any],
    unchanged: Callable[[dict[str, Any]], bool],
    wait: float,
    changed: asyncio.Event,
    draw: Callable[[JobRow], dict[str, Any]],
) -> dict[str, Any]:
    """Wait until the representation changes (or the job is terminal), at most `wait` seconds."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + wait
    while unchanged(body) and not JobStatus(body["status"].upper()).terminal:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        # A RUNNING job turns STALLED without an event: wake up when that happens, too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(remaining, _until_stall(row, runtime)))
        changed.clear()
        row = await find(runtime, row.job_id)
        body = draw(row)
    return body


def _until_stall(row: JobRow, runtime: Runtime) -> float:
    activity = row.state.activity_at
    if row.state.status is not JobStatus.RUNNING or activity is None:
        return float("inf")
    due = activity + runtime.settings.stall_after - datetime.now(UTC)
    return max(due.total_seconds(), 0.0) + 0.01


def _status_response(body: dict[str, Any], if_none_match: str | None, wait: float | None, retry_after: int) -> Response:
    tag = etag(body)
    headers = {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Prefer"}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={int(wait)}"
    if not JobStatus(body["status"].upper()).terminal:
        headers["Retry-After"] = str(retry_after)
    if _matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


def _matches(if_none_match: str | None, tag: str) -> bool:
    """If-None-Match semantics (RFC 9110: weak comparison, `*` matches any)."""
    if if_none_match is None:
        return False
    candidates = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in candidates or tag in candidates


def _not_succeeded(body: dict[str, Any]) -> Problem:
    status = body["status"]
    return Problem(
        409,
        f"Job {status}",
        f"job {body['id']} ended {status}: it has no result",
        type_=f"{TYPE_BASE}job-not-succeeded",
        job=body,
        error=body.get("error"),
    )


def _cursor(token: str | None) -> Cursor | None:
    if token is None:
        return None
    try:
        return decode_cursor(token)
    except ValueError as exc:
        raise Problem(
            422,
            "Request validation failed",
            "invalid: query.cursor",
            type_=f"{TYPE_BASE}validation",
            errors=[{"field": "query.cursor", "detail": str(exc)}],
        ) from exc


def _aware(moment: datetime | None) -> datetime | None:
    """Query times without a zone are UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _next(page: list[JobRow]) -> str:
    last = page[-1].state
    created = last.created_at
    if created is None:
        raise ValueError(f"job {last.job_id} has no creation time")
    return encode_cursor(Cursor(created, last.job_id))
