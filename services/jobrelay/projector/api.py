"""The query API: a job's status (ETag, long-poll), its result, the job list; cancel and re-run.

The SSE stream lives in `stream.py`. Errors are problem+json naming what was wrong. Cancel
(`DELETE /v1/jobs/{id}`) and re-run (`POST /v1/jobs/{id}/retry`) answer from the view and send
their request through Kafka (job-requested, keyed by the job id, acks=all): the processor that
owns the job acts on it; nothing here calls another service.
"""

import asyncio
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer

from jobrelay.http.auth import Authenticator, require
from jobrelay.http.limits import Buckets, StreamSlots
from jobrelay.http.problems import TYPE_BASE, Problem
from jobrelay.jobs.events import Event, JobCancelRequested, JobRequested
from jobrelay.jobs.state import JobState, JobStatus, evolve, status_at
from jobrelay.projector.estimates import retry_after
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store.base import Cursor, JobQuery
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.views import (
    decode_cursor,
    encode_cursor,
    etag,
    links,
    render,
    result_value,
    retry_id,
    retryable,
)
from jobrelay.security.keys import Principal, Scope

__all__ = ["AUTH_RESPONSES", "BEARER", "Context", "find", "find_for", "jobs_router", "parse_wait"]

StatusName = Literal["accepted", "running", "retrying", "stalled", "succeeded", "failed", "cancelled", "expired"]
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class Context:
    """What the handlers need: the settings, who may call, and the running runtime (set by the lifespan)."""

    def __init__(self, settings: ProjectorSettings, auth: Authenticator) -> None:
        self.settings, self.auth = settings, auth
        self.runtime: Runtime | None = None
        self.reads = Buckets(settings.reads_per_s, settings.reads_burst, what="reading the status API")
        self.streams = StreamSlots(settings.max_streams_per_tenant, settings.max_streams)

    def _caller(self, request: Request, scope: Scope) -> Principal:
        caller = require(self.auth.principal(request.headers), scope)
        self.reads.take(caller.key_id or caller.tenant)
        return caller

    def reader(self, request: Request) -> Principal:
        """The caller, who must hold the `read` scope and be within its rate (a FastAPI dependency)."""
        return self._caller(request, Scope.READ)

    def canceller(self, request: Request) -> Principal:
        """The caller, who must hold the `cancel` scope (cancel and re-run)."""
        return self._caller(request, Scope.CANCEL)

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
    raise _not_found(job_id)


def _not_found(job_id: str) -> Problem:
    return Problem(404, "Job not found", f"no job {job_id}", type_=f"{TYPE_BASE}job-not-found")


async def find_for(runtime: Runtime, job_id: str, caller: Principal) -> JobRow:
    """`find`, for this caller: another tenant's job is a 404, exactly like one that does not exist."""
    row = await find(runtime, job_id)
    if not caller.admin and row.state.tenant != caller.tenant:
        raise _not_found(job_id)
    return row


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": {"type": "object"}}}}


BEARER = HTTPBearer(auto_error=False, description="An API key: `jobrelay keys add TENANT` prints one.")
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_response("No API key, or an unknown or revoked one (`WWW-Authenticate: Bearer`)."),
    403: _problem_response("The API key lacks the scope (`read`; `cancel` to cancel or re-run)."),
    429: _problem_response("Past the key's request rate, or the tenant's cap on open long-polls and streams."),
}
_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "The cancel was taken (or had been): the status document, with `cancel_requested_at`."},
    404: _problem_response("No such job (truthful: the view caught up with the job's partition first)."),
    409: _problem_response("The job is already over (`job_status` names how); its outcome does not change."),
    410: _problem_response("The job finished and was purged after its retention."),
    422: _problem_response("The job id is not a UUID."),
    503: _problem_response("Kafka is unreachable or the view is catching up: nothing was changed; retry."),
}
_RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "The re-run was accepted (or had been: `Idempotent-Replayed`): the new job's id and links."},
    404: _problem_response("No such job."),
    409: _problem_response("The job cannot be re-run: it has not ended, it succeeded, or its request is unknown."),
    410: _problem_response("The job finished and was purged after its retention."),
    422: _problem_response("The job id is not a UUID."),
    503: _problem_response("Kafka is unreachable or the view is catching up: nothing was submitted; retry."),
}


def jobs_router(context: Context) -> APIRouter:
    """`/v1/jobs…` routes bound to `context`."""
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(BEARER)], responses=AUTH_RESPONSES)
    runtime_dep = Annotated[Runtime, Depends(context.get)]
    reader = Annotated[Principal, Depends(context.reader)]
    canceller = Annotated[Principal, Depends(context.canceller)]
    settings = context.settings

    def now() -> datetime:
        return datetime.now(UTC)

    def document(row: JobRow, request: Request, retried: dict[str, str] | None = None) -> dict[str, Any]:
        moment = now()
        runtime = context.get()
        status = status_at(row.state, moment, settings.stall_after)
        return render(
            row,
            now=moment,
            stall_after=settings.stall_after,
            base=context.base(request),
            retention=settings.retention,
            estimate=runtime.hub.estimates.estimate(row.state, status, moment),
            retried_as=(retried or {}).get(row.job_id),
        )

    async def retried(runtime: Runtime, rows: list[JobRow]) -> dict[str, str]:
        """Old job id → the id of the job that re-ran it, for the rows that could have been re-run."""
        candidates = {retry_id(r.job_id): r.job_id for r in rows if retryable(r.state, r.state.status)}
        if not candidates:
            return {}
        loaded = await runtime.store.load(list(candidates))
        return {candidates[new]: new for new in loaded.rows}

    def poll_after(body: dict[str, Any]) -> int:
        estimate = body.get("estimated_completion")
        moment = now()
        when = datetime.fromisoformat(estimate) if isinstance(estimate, str) else None
        return retry_after(when, moment, settings.retry_after_s, settings.max_retry_after_s)

    @router.get("/{job_id}", summary="A job's status (ETag, If-None-Match, Prefer: wait=N)")
    async def get_job(
        job_id: uuid.UUID,
        request: Request,
        runtime: runtime_dep,
        caller: reader,
        if_none_match: Annotated[str | None, Header()] = None,
        prefer: Annotated[str | None, Header()] = None,
    ) -> Response:
        wait = parse_wait(prefer, settings.max_wait_s)
        with runtime.hub.watch(str(job_id)) as changed:
            row = await find_for(runtime, str(job_id), caller)
            body = document(row, request, await retried(runtime, [row]))
            first = etag(body)

            def unchanged(current: dict[str, Any]) -> bool:
                tag = etag(current)
                return _matches(if_none_match, tag) if if_none_match is not None else tag == first

            if wait:
                with context.streams.slot(caller.tenant):
                    body = await _long_poll(
                        runtime, row, body, unchanged, wait, changed, lambda r: document(r, request)
                    )
        return _status_response(body, if_none_match, wait, poll_after(body))

    @router.delete(
        "/{job_id}",
        status_code=202,
        summary="Cancel a job: 202 taken (repeatable), 404 unknown, 409 already over",
        responses=_CANCEL_RESPONSES,
    )
    async def cancel_job(job_id: uuid.UUID, request: Request, runtime: runtime_dep, caller: canceller) -> Response:
        row = await find_for(runtime, str(job_id), caller)
        status = status_at(row.state, now(), settings.stall_after)
        if status.terminal:
            raise _already_over(document(row, request, await retried(runtime, [row])))
        state = row.state
        if state.cancel is None:  # a repeated DELETE changes nothing (the earliest cancel is the one kept)
            cancel = JobCancelRequested(job_id=str(job_id), tenant=state.tenant, requested_by=caller.key_id)
            await _publish(runtime, cancel)
            state = evolve(state, cancel, requested_topic=runtime.topics.requested)  # read your own write
        body = document(JobRow(state, row.version, row.applied), request)
        headers = {"Location": body["links"]["self"], "Retry-After": str(poll_after(body))}
        return JSONResponse(body, status_code=202, headers=headers)

    @router.post(
        "/{job_id}/retry",
        status_code=202,
        summary="Re-run a failed, cancelled or expired job as a new job (202 with the new job)",
        responses=_RETRY_RESPONSES,
    )
    async def retry_job(job_id: uuid.UUID, request: Request, runtime: runtime_dep, caller: canceller) -> Response:
        row = await find_for(runtime, str(job_id), caller)
        status = status_at(row.state, now(), settings.stall_after)
        if not retryable(row.state, status):
            raise _not_retryable(document(row, request, await retried(runtime, [row])), status)
        new_id = retry_id(str(job_id))
        replayed = await runtime.store.get(new_id) is not None
        if not replayed:
            await _publish(runtime, _rerun(row.state, new_id, now()))
        base = context.base(request)
        location = links(base, new_id)["self"]
        job_links = {**links(base, new_id), "cancel": location, "retry_of": links(base, str(job_id))["self"]}
        body = {"id": new_id, "status": "accepted", "retry_of": str(job_id), "links": job_links}
        headers = {"Location": location, "Retry-After": str(settings.retry_after_s)}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(body, status_code=202, headers=headers)

    @router.get("/{job_id}/result", summary="The result (200), 303 to the status while running, 409 if not succeeded")
    async def get_result(job_id: uuid.UUID, request: Request, runtime: runtime_dep, caller: reader) -> Response:
        row = await find_for(runtime, str(job_id), caller)
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
        caller: reader,
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
            created_after=_instant("query.created_after", created_after),
            created_before=_instant("query.created_before", created_before),
            tenant=None if caller.admin else caller.tenant,
        )
        rows = await runtime.store.query(query)
        page = rows[:size]
        next_cursor = _next(page) if len(rows) > size else None
        next_link = str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
        again = await retried(runtime, page)
        return {
            "items": [document(r, request, again) for r in page],
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


async def _publish(runtime: Runtime, event: Event) -> None:
    """Put a cancel or re-run request on job-requested (acks=all), or answer 503."""
    producer = runtime.dead_letters
    try:
        if producer is None:
            raise RuntimeError("no producer")
        await asyncio.wait_for(producer.publish(event), runtime.settings.publish_timeout_s)
    except Exception as exc:  # aiokafka raises KafkaError subclasses, a timeout TimeoutError
        raise Problem(
            503,
            "Kafka unavailable",
            f"the request could not be put on Kafka: {type(exc).__name__}; nothing was changed, retry shortly",
            type_=f"{TYPE_BASE}unavailable",
            headers={"Retry-After": "2"},
        ) from exc


def _rerun(state: JobState, new_id: str, now: datetime) -> JobRequested:
    """The request of a job that re-runs `state`'s job: the same input and options, a new id."""
    request = state.request
    if request is None or request.payload is None:
        raise ValueError(f"job {state.job_id} has no request to re-run")
    window = request.expires_at - request.created_at if request.expires_at is not None else None
    fields = {
        "type": request.job_type,
        "payload": request.payload,
        "callback_url": request.callback_url,
        "timeout_s": request.timeout_s,
        "max_attempts": request.max_attempts,
        "retry_of": state.job_id,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return JobRequested(
        job_id=new_id,
        job_type=request.job_type,
        payload=request.payload,
        max_attempts=request.max_attempts,
        timeout_s=request.timeout_s,
        expires_at=now.replace(microsecond=now.microsecond // 1000 * 1000) + window if window is not None else None,
        callback_url=request.callback_url,
        client_id=request.client_id,
        tenant=request.tenant,
        retry_of=state.job_id,
        request_hash=digest,
    )


def _already_over(body: dict[str, Any]) -> Problem:
    status = body["status"]
    return Problem(
        409,
        f"Job already {status}",
        f"job {body['id']} is already {status}: it cannot be cancelled, and its outcome stays {status}",
        type_=f"{TYPE_BASE}job-already-over",
        job_status=status,
        job=body,
    )


def _not_retryable(body: dict[str, Any], status: JobStatus) -> Problem:
    state = body["status"]
    reason = (
        "only a job that failed, was cancelled or expired can be re-run"
        if not status.terminal or status is JobStatus.SUCCEEDED
        else "its request is not in the view (the job was recorded before re-runs were possible)"
    )
    return Problem(
        409,
        f"Job {state} cannot be re-run",
        f"job {body['id']} is {state}: {reason}",
        type_=f"{TYPE_BASE}job-not-retryable",
        job_status=state,
        job=body,
    )


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


def _invalid(field: str, detail: str) -> Problem:
    return Problem(
        422,
        "Request validation failed",
        f"invalid: {field}",
        type_=f"{TYPE_BASE}validation",
        errors=[{"field": field, "detail": detail}],
    )


def _cursor(token: str | None) -> Cursor | None:
    if not token:  # absent or empty: the first page
        return None
    try:
        return decode_cursor(token)
    except ValueError as exc:
        raise _invalid("query.cursor", str(exc)) from exc


def _instant(field: str, moment: datetime | None) -> datetime | None:
    """A query time in UTC (one without a zone is UTC); 422 naming `field` when it has no UTC instant."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 lies before the first UTC instant
        raise _invalid(field, "outside the range of UTC times (years 1 to 9999)") from exc


def _next(page: list[JobRow]) -> str:
    last = page[-1].state
    created = last.created_at
    if created is None:
        raise ValueError(f"job {last.job_id} has no creation time")
    return encode_cursor(Cursor(created, last.job_id))
