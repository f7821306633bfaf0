"""CORS for browser front ends: off unless origins are configured (`CorsSettings`).

Starlette's `CORSMiddleware` answers preflights itself, before authentication (a browser sends
them without the `Authorization` header), and adds the allow headers to every answer, errors
included, so a page can read a 401, 429 or problem+json. Credentials (cookies) are never
allowed: the APIs authenticate with a bearer key, which a page sends explicitly.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from jobrelay.config.settings import CorsSettings

__all__ = ["REQUEST_HEADERS", "RESPONSE_HEADERS", "install_cors"]

REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Prefer", "If-None-Match", "Last-Event-ID")
"""Headers a page may send."""

RESPONSE_HEADERS = ("Location", "Retry-After", "ETag", "Preference-Applied", "WWW-Authenticate")
"""Headers a page may read beyond the CORS-safelisted ones."""


def install_cors(app: FastAPI, settings: CorsSettings) -> None:
    """Let the configured origins call `app` from a browser; nothing when none are configured.

    Call it last: the middleware added last is the outermost, so it sees every request first.
    """
    if not settings.origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=list(REQUEST_HEADERS),
        expose_headers=list(RESPONSE_HEADERS),
        allow_credentials=False,
        max_age=settings.max_age_s,
    )
