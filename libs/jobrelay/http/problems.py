"""RFC 9457 problem details (`application/problem+json`) for every error a service answers.

Validation errors name the offending field as a JSON Pointer-ish dotted path, e.g.
`{"type": ".../validation", "status": 422, "errors": [{"field": "body.callback_url", "detail": ...}]}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

__all__ = ["PROBLEM_JSON", "Problem", "install_problem_handlers", "problem_response"]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://jobrelay.dev/problems/"


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type = status, title, detail, type_
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(problem: Problem) -> JSONResponse:
    """The JSON response for `problem`."""
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extensions)
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def _field(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location)


def validation_problem(errors: Sequence[Any]) -> Problem:
    """A 422 naming every invalid field."""
    fields = [{"field": _field(e.get("loc", ())), "detail": e.get("msg", "invalid")} for e in errors]
    named = ", ".join(f["field"] for f in fields)
    return Problem(422, "Request validation failed", f"invalid: {named}", type_=f"{TYPE_BASE}validation", errors=fields)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer HTTP errors, validation errors and `Problem`s as problem+json."""

    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(cast(Problem, exc))

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(validation_problem(cast(RequestValidationError, exc).errors()))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        http = cast(StarletteHTTPException, exc)
        return problem_response(Problem(http.status_code, str(http.detail), headers=http.headers))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
