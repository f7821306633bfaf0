"""The FastAPI route that documents `POST /v1/jobs` answers with the same handler as the fast path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from jobrelay.config.settings import AuthSettings
from jobrelay.http.auth import Authenticator
from jobrelay.intake.api import jobs_router
from jobrelay.intake.settings import IntakeSettings
from jobrelay.intake.submit import SubmitHandler


def test_the_documented_route_alone_answers_like_the_fast_path(tmp_path: Path) -> None:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        yield {"intake": None}  # every request below is refused before the intake is asked

    app = FastAPI(lifespan=lifespan)
    auth = Authenticator(AuthSettings(mode="gateway", keys_file=tmp_path / "keys.json"))
    app.include_router(jobs_router(SubmitHandler(IntakeSettings(idempotency_db=tmp_path / "k.sqlite3"), auth)))
    with TestClient(app) as http:
        text = http.post("/v1/jobs", content=b"{}", headers={"Content-Type": "text/plain"})
        bad_key = http.post("/v1/jobs", json={"type": "a.b", "payload": 1}, headers={"Idempotency-Key": "a\tb"})
        invalid = http.post("/v1/jobs", json={"type": "not a type", "payload": 1})
    assert [r.status_code for r in (text, bad_key, invalid)] == [415, 400, 422]
    assert {r.headers["content-type"] for r in (text, bad_key, invalid)} == {"application/problem+json"}
    assert [e["field"] for e in text.json()["errors"]] == ["header.Content-Type"]
    assert [e["field"] for e in bad_key.json()["errors"]] == ["header.Idempotency-Key"]
    assert [e["field"] for e in invalid.json()["errors"]] == ["body.type"]
