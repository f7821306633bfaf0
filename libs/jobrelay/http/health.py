"""`/healthz` (the process is alive), `/readyz` (it can do its job) and `/metrics` (Prometheus)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

__all__ = ["Readiness", "health_router"]

# Returns (ready, details): details are shown to operators, e.g. {"kafka": "connected", "lag": 3}.
Readiness = Callable[[], tuple[bool, dict[str, object]]]


def health_router(readiness: Readiness) -> APIRouter:
    """The three operational endpoints, excluded from the OpenAPI document of the product API."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, details = readiness()
        return JSONResponse({"ready": ready, **details}, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
