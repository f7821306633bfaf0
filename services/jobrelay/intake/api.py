"""`POST /v1/jobs` as the OpenAPI document describes it.

The handler itself is `jobrelay.intake.submit`; this module says what it answers, for the
OpenAPI document: the body's schema, the headers, and every status with its problem body.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrelay.http.problems import PROBLEM_JSON
from jobrelay.intake.submit import ROUTE, SubmitHandler
from jobrelay.sdk.request import JobSubmission

__all__ = ["AcceptedBody", "jobs_router"]


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


BEARER = HTTPBearer(auto_error=False, description="An API key: `jobrelay keys add TENANT` prints one.")
_STATUS_DOCUMENT = {
    "type": "object",
    "description": "The job's final status, the document `GET /v1/jobs/{id}` serves (the result inline).",
    "required": ["id", "type", "status", "links"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "status": {"type": "string", "enum": ["succeeded", "failed", "cancelled", "expired"]},
        "progress": {"type": ["number", "null"]},
        "attempts": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "completed_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "result": {"description": "What the handler returned (succeeded jobs)."},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "retryable": {"type": "boolean"}},
        },
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The job ended within `Prefer: wait=N`: its final status.",
        "content": {"application/json": {"schema": _STATUS_DOCUMENT}},
        "headers": {
            "Preference-Applied": {"description": "`wait=N`, N as capped by the intake.", "schema": {"type": "string"}},
            "Content-Location": {"description": "The job's status URL.", "schema": {"type": "string"}},
            "Location": {"description": "The job's status URL.", "schema": {"type": "string"}},
            "Idempotent-Replayed": {
                "description": "`true` when an earlier request with this key was accepted.",
                "schema": {"type": "string"},
            },
        },
    },
    202: {
        "description": "Accepted: the JobRequested record is on Kafka (acks=all); with `Prefer: wait=N`, the job "
        "did not end within N seconds.",
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
    401: {
        **_problem_doc("No API key, or an unknown or revoked one (`Authorization: Bearer <key>`)."),
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    403: _problem_doc("The API key lacks the `submit` scope."),
    429: {
        **_problem_doc("The tenant submits faster than its rate allows; retry after Retry-After."),
        "headers": {
            "Retry-After": {"description": "Seconds until a submission is allowed.", "schema": {"type": "integer"}}
        },
    },
    413: _problem_doc("The request body or the payload is larger than allowed."),
    415: _problem_doc("The body is not application/json."),
    422: _problem_doc("A field breaks the rules, or the Idempotency-Key was used for a different request."),
    503: {
        **_problem_doc(
            "Kafka is unreachable or too slow, or the processors' backlog is past the admission threshold "
            "(type …/overloaded). Retry after Retry-After (with the same Idempotency-Key it is always safe)."
        ),
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}


def jobs_router(handler: SubmitHandler) -> APIRouter:
    """The product API as FastAPI sees it: the OpenAPI document of `POST /v1/jobs`.

    In the running app `SubmitRoute` hands these requests to `handler` before FastAPI routes
    them; were it left out, this route would answer them with the same handler.
    """
    router = APIRouter()
    body_schema = {"required": True, "content": {"application/json": {"schema": JobSubmission.model_json_schema()}}}
    parameters = [
        _header_doc("Idempotency-Key", "Same key → same job."),
        _header_doc(handler.client_header, "Client identity."),
        _header_doc(
            "Prefer",
            "`wait=N` (RFC 7240): wait up to N seconds (capped by JOBRELAY_INTAKE_MAX_WAIT_S) for the job to end, "
            "then answer 200 with its final status; else the usual 202. A malformed value is ignored.",
            example="wait=5",
        ),
    ]

    @router.post(
        ROUTE,
        dependencies=[Depends(BEARER)],
        status_code=202,
        response_model=AcceptedBody,
        responses=RESPONSES,
        openapi_extra={"requestBody": body_schema, "parameters": parameters},
        summary="Submit a job",
    )
    async def submit_job() -> Response:
        return _Delegated(handler)

    return router


def _header_doc(name: str, description: str, example: str | None = None) -> dict[str, Any]:
    doc = {"name": name, "in": "header", "required": False, "description": description, "schema": {"type": "string"}}
    return doc | ({"example": example} if example is not None else {})


class _Delegated(Response):
    """A response that lets an ASGI app read the request and answer it."""

    def __init__(self, app: ASGIApp) -> None:
        self._app, self.background = app, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
