"""`POST /v1/jobs`: read and check the request, accept the job, answer 202 (or a problem).

The body is read by hand (not by FastAPI's body parsing) so that each kind of bad input gets its
own answer before anything is decoded: 415 for a body that is not JSON, 413 for one over the
size limit, 400 for malformed JSON, 422 for a request that breaks the rules.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jobrelay.http.problems import PROBLEM_JSON, TYPE_BASE, Problem
from jobrelay.intake.accept import ACCEPT_SECONDS, REQUESTS, BrokerUnavailable, IdempotencyConflict, Intake
from jobrelay.intake.settings import IntakeSettings
from jobrelay.observability.logging import get_logger
from jobrelay.sdk.errors import InvalidJobRequest
from jobrelay.sdk.identity import ANONYMOUS, build_requested
from jobrelay.sdk.request import JobSubmission, RequestLimits
from jobrelay.sdk.validation import validate_submission

__all__ = ["AcceptedBody", "jobs_router"]

log = get_logger(__name__)
MAX_KEY_LENGTH = 255


class AcceptedBody(BaseModel):
    """The 202 body: the job id and where to follow the job."""

    id: str
    status: str = "accepted"
    links: dict[str, str]


def _problem_doc(description: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"type": "object", "properties": {"field": {"type": "string"}, "detail": {"type": "string"}}},
            },
        },
    }
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the JobRequested record is on Kafka (acks=all).",
        "headers": {
            "Location": {"description": "The job's status URL.", "schema": {"type": "string"}},
            "Retry-After": {"description": "Seconds before the first status poll.", "schema": {"type": "integer"}},
            "Idempotent-Replayed": {
                "description": "`true` when an earlier request with this key was accepted.",
                "schema": {"type": "string"},
            },
        },
    },
    400: _problem_doc("Malformed JSON, or a bad Idempotency-Key or client id header."),
    413: _problem_doc("The request body or the payload is larger than allowed."),
    415: _problem_doc("The body is not application/json."),
    422: _problem_doc("A field breaks the rules, or the Idempotency-Key was used for a different request."),
    503: {
        **_problem_doc("Kafka is unreachable or too slow: nothing was accepted. Retry later."),
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}


def jobs_router(settings: IntakeSettings) -> APIRouter:
    """The product API; the `Intake` comes from the lifespan state (`request.state.intake`)."""
    router = APIRouter()
    limits = settings.limits()
    body_schema = {"required": True, "content": {"application/json": {"schema": JobSubmission.model_json_schema()}}}

    @router.post(
        "/v1/jobs",
        status_code=202,
        response_model=AcceptedBody,
        responses=RESPONSES,
        openapi_extra={"requestBody": body_schema},
        summary="Submit a job",
    )
    async def submit_job(
        request: Request,
        idempotency_key: str | None = Header(None, alias="Idempotency-Key", description="Same key → same job."),
        client: str | None = Header(None, alias=settings.client_id_header, description="Client identity."),
    ) -> JSONResponse:
        started = time.perf_counter()
        try:
            response = await _submit(request, settings, limits, idempotency_key, client)
        except Problem as problem:
            REQUESTS.labels(str(problem.status)).inc()
            raise
        ACCEPT_SECONDS.observe(time.perf_counter() - started)
        return response

    return router


async def _submit(
    request: Request, settings: IntakeSettings, limits: RequestLimits, key: str | None, client: str | None
) -> JSONResponse:
    intake: Intake = request.state.intake
    _check_header("Idempotency-Key", key)
    _check_header(settings.client_id_header, client)
    raw = await _read_json_body(request, settings.max_body_bytes)
    try:
        submission = await validate_submission(raw, limits)
    except InvalidJobRequest as exc:
        raise _invalid(exc) from exc
    event = build_requested(submission, idempotency_key=key, client_id=client or ANONYMOUS)
    with structlog.contextvars.bound_contextvars(job_id=event.job_id, job_type=event.job_type):
        try:
            accepted = await intake.accept(event)
        except IdempotencyConflict as exc:
            raise _conflict() from exc
        except BrokerUnavailable as exc:
            log.warning("job not accepted: kafka unavailable", error=str(exc))
            raise _unavailable(str(exc), settings.unavailable_retry_after_s) from exc
        log.info("job accepted", replayed=accepted.replayed)
    REQUESTS.labels("replayed" if accepted.replayed else "accepted").inc()
    return _accepted(accepted.job_id, accepted.replayed, settings)


def _accepted(job_id: str, replayed: bool, settings: IntakeSettings) -> JSONResponse:
    base = f"{settings.status_base_url.rstrip('/')}/v1/jobs/{job_id}"
    # No `cancel` link: there is no cancel event on the topics yet, so nothing could honour it.
    links = {"status": base, "result": f"{base}/result", "events": f"{base}/events"}
    headers = {"Location": base, "Retry-After": str(settings.poll_after_s)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body = AcceptedBody(id=job_id, links=links).model_dump()
    return JSONResponse(body, status_code=202, headers=headers)


def _check_header(name: str, value: str | None) -> None:
    if value is None:
        return
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        field = f"header.{name}"
        raise Problem(
            400,
            f"Invalid {name} header",
            f"{name} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            type_=f"{TYPE_BASE}invalid-header",
            errors=[{"field": field, "detail": "1 to 255 printable ASCII characters"}],
        )


async def _read_json_body(request: Request, limit: int) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise Problem(
            415,
            "Unsupported media type",
            f"send the job as application/json, not {media or 'nothing'}",
            type_=f"{TYPE_BASE}unsupported-media-type",
            errors=[{"field": "header.Content-Type", "detail": "must be application/json"}],
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Request body too large",
        f"the body must be at most {limit} bytes",
        type_=f"{TYPE_BASE}body-too-large",
        errors=[{"field": "body", "detail": f"over {limit} bytes"}],
    )


def _invalid(exc: InvalidJobRequest) -> Problem:
    titles = {400: "Malformed JSON", 413: "Payload too large", 422: "Invalid job request"}
    kinds = {400: "malformed-json", 413: "payload-too-large", 422: "validation"}
    errors = [{"field": e.field, "detail": e.detail} for e in exc.errors]
    detail = "; ".join(f"{e.field}: {e.detail}" for e in exc.errors)
    return Problem(
        exc.status,
        titles.get(exc.status, "Invalid request"),
        detail,
        type_=f"{TYPE_BASE}{kinds.get(exc.status, 'validation')}",
        errors=errors,
    )


def _conflict() -> Problem:
    detail = "this Idempotency-Key was already used for a different request; use a new key for a new job"
    return Problem(
        422,
        "Idempotency-Key reused",
        detail,
        type_=f"{TYPE_BASE}idempotency-conflict",
        errors=[{"field": "header.Idempotency-Key", "detail": detail}],
    )


def _unavailable(reason: str, retry_after: int) -> Problem:
    detail = (
        f"the job was not accepted ({reason}). Retrying with the same Idempotency-Key is safe: it never "
        "creates a second job. Without a key, a retry may create a second job, because a write that "
        "timed out can still land."
    )
    return Problem(
        503,
        "Kafka unavailable",
        detail,
        type_=f"{TYPE_BASE}broker-unavailable",
        headers={"Retry-After": str(retry_after)},
    )
