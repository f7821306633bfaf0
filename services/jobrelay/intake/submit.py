"""`POST /v1/jobs` as one plain ASGI handler: read and check the request, accept the job, answer.

Each kind of bad input gets its own problem+json answer before anything is decoded: 415 for a
body that is not JSON, 413 for one over the size limit, 400 for malformed JSON or a bad header,
422 for a request that breaks the rules. A 202 comes only after Kafka acknowledged the record.

It runs ahead of FastAPI's routing (`fastpath.py`): FastAPI's request plumbing, dependency
solving and the OpenTelemetry ASGI middleware cost as much CPU as accepting the job itself. So
this handler makes the request's SERVER span itself, continuing the caller's `traceparent`; the
span is current while the job is accepted, so the record's headers and the log lines carry it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import orjson
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrelay.http.auth import Authenticator, require
from jobrelay.http.limits import Buckets
from jobrelay.http.problems import PROBLEM_JSON, Problem
from jobrelay.intake.accept import ACCEPT_SECONDS, REQUESTS, Accepted, BrokerUnavailable, IdempotencyConflict, Intake
from jobrelay.intake.backlog import Backlog, BacklogMonitor
from jobrelay.intake.completions import Completions
from jobrelay.intake.prefer import finished_document, wait_preference
from jobrelay.intake.problems import (
    check_header,
    check_media_type,
    conflict,
    invalid,
    overloaded,
    too_large,
    unavailable,
)
from jobrelay.intake.settings import IntakeSettings
from jobrelay.jobs.events import JobCompleted, JobRequested
from jobrelay.observability.logging import get_logger
from jobrelay.sdk.errors import InvalidJobRequest
from jobrelay.sdk.identity import ANONYMOUS, build_requested
from jobrelay.sdk.validation import validate_submission
from jobrelay.security.keys import Scope as KeyScope

__all__ = ["ROUTE", "WAITS", "SubmitHandler", "SubmitRoute", "Wait"]

log = get_logger(__name__)
ROUTE = "/v1/jobs"
_TRACER = trace.get_tracer("jobrelay.intake")
_SPAN_ATTRIBUTES = {"http.request.method": "POST", "http.route": ROUTE, "url.path": ROUTE}
_ACCEPTED, _REPLAYED = REQUESTS.labels("accepted"), REQUESTS.labels("replayed")
WAITS = Counter("jobrelay_intake_waits_total", "Accepted POSTs with Prefer: wait, by how the wait ended", ["outcome"])
_WAIT_FINISHED, _WAIT_TIMED_OUT = WAITS.labels("finished"), WAITS.labels("timed_out")  # 200, 202
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, JSON body, extra headers


@dataclass(frozen=True, slots=True)
class Wait:
    """A `Prefer: wait=N` this intake honours: N (capped) and where the outcomes arrive."""

    seconds: int
    completions: Completions


class ClientGone(Exception):
    """The client disconnected before its body arrived: there is nobody to answer."""


class SubmitHandler:
    """The ASGI app of `POST /v1/jobs`; the `Intake` comes from the lifespan state."""

    def __init__(self, settings: IntakeSettings, auth: Authenticator) -> None:
        self._settings, self._limits, self._auth = settings, settings.limits(), auth
        self._submits = Buckets(settings.submits_per_s, settings.submits_burst, what="submitting jobs")
        self._status_base = settings.status_base_url.rstrip("/")
        self._jobs_url = f"{self._status_base}{ROUTE}/"
        self.client_header = settings.client_id_header
        self._client_key = settings.client_id_header.lower()
        self._poll_after = str(settings.poll_after_s).encode()
        expiry = settings.default_expires_in_s
        self._default_expiry = timedelta(seconds=expiry) if expiry > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (a problem+json document for every refusal)."""
        headers = _headers(scope)
        context = propagate.extract(headers)
        with _TRACER.start_as_current_span(
            f"POST {ROUTE}", context=context, kind=SpanKind.SERVER, attributes=_SPAN_ATTRIBUTES
        ) as span:
            try:
                status, body, extra = await self._answer(scope["state"], headers, receive)
            except ClientGone:
                return
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        media = b"application/json" if status < 400 else PROBLEM_JSON.encode()
        start = [(b"content-type", media), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": start})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, state: dict[str, Any], headers: dict[str, str], receive: Receive) -> Answer:
        started = time.perf_counter()
        backlog: BacklogMonitor | None = state.get("backlog")
        latest = backlog.latest if backlog is not None else None
        prefer = headers.get("prefer")  # absent: no waiter work at all
        wait = self._wait(prefer, state.get("completions")) if prefer is not None else None
        try:
            event, replayed, expected = await self._submit(state["intake"], latest, headers, receive, wait)
        except Problem as problem:
            REQUESTS.labels(str(problem.status)).inc()
            return _problem(problem)
        except ClientGone:
            raise
        except Exception as exc:  # answered as a problem, like the framework would, and logged
            log.exception("request failed")
            return _problem(Problem(500, "Internal server error", type(exc).__name__))
        (_REPLAYED if replayed else _ACCEPTED).inc()
        ACCEPT_SECONDS.observe(time.perf_counter() - started)
        if wait is not None and expected is not None:
            left = started + wait.seconds - time.perf_counter()
            completed = await wait.completions.outcome(event.job_id, expected, left)
            (_WAIT_TIMED_OUT if completed is None else _WAIT_FINISHED).inc()
            if completed is not None:
                return self._finished(event, completed, wait.seconds, replayed)
        return self._accepted(event.job_id, replayed, latest)

    def _wait(self, prefer: str, completions: Completions | None) -> Wait | None:
        """What `Prefer: wait=N` asks, capped; None when it asks nothing or this intake cannot wait now."""
        seconds = min(wait_preference(prefer) or 0, self._settings.max_wait_s)
        if seconds <= 0 or completions is None or not completions.watching:
            return None
        return Wait(seconds, completions)

    async def _submit(
        self, intake: Intake, backlog: Backlog | None, headers: dict[str, str], receive: Receive, wait: Wait | None
    ) -> tuple[JobRequested, bool, asyncio.Future[JobCompleted] | None]:
        event = await self._event(backlog, headers, receive)
        if wait is None:
            return event, (await self._accept(intake, event)).replayed, None
        # Before the record is published: its outcome cannot come before anyone waits for it.
        expected = wait.completions.expect(event.job_id)
        try:
            accepted = await self._accept(intake, event)
        except BaseException:
            wait.completions.forget(event.job_id, expected)
            raise
        return event, accepted.replayed, expected

    async def _event(self, backlog: Backlog | None, headers: dict[str, str], receive: Receive) -> JobRequested:
        """The JobRequested of a request that passed every check (auth, rate, backlog, headers, body)."""
        caller = require(self._auth.principal(headers), KeyScope.SUBMIT)  # before the body is read
        self._submits.take(caller.tenant)
        if backlog is not None and backlog.records > self._settings.max_backlog:
            raise overloaded(backlog.records, self._settings.max_backlog, backlog.wait_s())
        key, client = headers.get("idempotency-key"), headers.get(self._client_key)
        check_header("Idempotency-Key", key)
        if caller.key_id is None:  # behind a gateway: the client id is the gateway's word
            check_header(self._settings.client_id_header, client)
        raw = await _read_json_body(headers, receive, self._settings.max_body_bytes)
        try:
            submission = await validate_submission(raw, self._limits)
        except InvalidJobRequest as exc:
            raise invalid(exc) from exc
        event = build_requested(
            submission,
            idempotency_key=key,
            client_id=caller.key_id or client or ANONYMOUS,
            tenant=caller.tenant,
            id_secret=self._auth.ring.current().id_secret,
        )
        if event.expires_at is None and self._default_expiry is not None:
            # After the request hash: a retried request with the same key is still the same request.
            event = replace(event, expires_at=event.occurred_at + self._default_expiry)
        return event

    async def _accept(self, intake: Intake, event: JobRequested) -> Accepted:
        try:
            accepted = await intake.accept(event)
        except IdempotencyConflict as exc:
            raise conflict() from exc
        except BrokerUnavailable as exc:
            log.warning("job not accepted: kafka unavailable", job_id=event.job_id, error=str(exc))
            raise unavailable(str(exc), self._settings.unavailable_retry_after_s) from exc
        log.info("job accepted", job_id=event.job_id, job_type=event.job_type, replayed=accepted.replayed)
        return accepted

    def _finished(self, event: JobRequested, completed: JobCompleted, seconds: int, replayed: bool) -> Answer:
        """The 200 of a job that ended within `Prefer: wait`: its final status document."""
        location = (self._jobs_url + event.job_id).encode()
        body = orjson.dumps(finished_document(event, completed, self._status_base))
        extra = [
            (b"location", location),
            (b"content-location", location),
            (b"preference-applied", b"wait=%d" % seconds),
        ]
        if replayed:
            extra.append((b"idempotent-replayed", b"true"))
        return 200, body, extra

    def _accepted(self, job_id: str, replayed: bool, backlog: Backlog | None) -> Answer:
        job_url = self._jobs_url + job_id
        # `cancel` is the status URL itself: DELETE on it (the status projector sends the request through Kafka).
        links = {"status": job_url, "result": f"{job_url}/result", "events": f"{job_url}/events", "cancel": job_url}
        body = orjson.dumps({"id": job_id, "status": "accepted", "links": links})
        poll_after = self._poll_after
        hint = backlog.poll_hint_s(self._settings.backlog_hint_records) if backlog is not None else None
        if hint is not None:  # a queue ahead: the first poll waits for it
            poll_after = str(max(self._settings.poll_after_s, hint)).encode()
        extra = [(b"location", job_url.encode()), (b"retry-after", poll_after)]
        if replayed:
            extra.append((b"idempotent-replayed", b"true"))
        return 202, body, extra


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name; the first of repeated ones wins (as in Starlette)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _read_json_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    check_media_type(headers.get("content-type", ""))
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # no Content-Length, or a wrong one: the limit holds while reading
            raise too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _problem(problem: Problem) -> Answer:
    document: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        document["detail"] = problem.detail
    document.update(problem.extensions)
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in problem.headers.items()]
    return problem.status, orjson.dumps(document), extra


class SubmitRoute:
    """ASGI middleware: `POST /v1/jobs` goes straight to its handler, the rest to the app."""

    def __init__(self, app: ASGIApp, handler: SubmitHandler) -> None:
        self.app, self.handler = app, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI call."""
        if scope["type"] == "http" and scope["path"] == ROUTE and scope["method"] == "POST":
            await self.handler(scope, receive, send)
        else:
            await self.app(scope, receive, send)
