"""The OpenAPI document describes the submission and every answer it can get."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.intake.main import create_app
from jobrelay.intake.settings import IntakeSettings


def test_openapi_describes_every_response_of_post_jobs(tmp_path: Path) -> None:
    app = create_app(IntakeSettings(idempotency_db=tmp_path / "k.sqlite3"), KafkaSettings(), TopicSettings())
    document = TestClient(app).get("/openapi.json").json()  # no lifespan: the document needs no broker
    post = document["paths"]["/v1/jobs"]["post"]
    assert {"200", "202", "400", "413", "415", "422", "503"} <= set(post["responses"])
    for code in ("400", "413", "415", "422", "503"):
        assert "application/problem+json" in post["responses"][code]["content"]
    assert {"Location", "Retry-After"} <= set(post["responses"]["202"]["headers"])
    assert "Retry-After" in post["responses"]["503"]["headers"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"type", "payload", "callback_url", "timeout_s", "expires_at", "max_attempts"}
    assert set(schema["required"]) == {"type", "payload"}
    headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert headers == {"Idempotency-Key", "X-Client-Id", "Prefer"}
    finished = post["responses"]["200"]
    assert "Preference-Applied" in finished["headers"]
    assert {"id", "status", "links"} <= set(finished["content"]["application/json"]["schema"]["required"])
    assert "/healthz" not in document["paths"]
