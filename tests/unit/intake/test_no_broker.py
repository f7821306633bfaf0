"""An intake whose broker is unreachable from the start: alive, not ready, and never a 202."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.intake.main import create_app
from jobrelay.intake.settings import IntakeSettings


def test_without_a_broker_the_intake_is_alive_but_answers_503(tmp_path: Path) -> None:
    settings = IntakeSettings(idempotency_db=tmp_path / "k.sqlite3", unavailable_retry_after_s=7)
    nobody = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000)  # a port nobody listens on
    with TestClient(create_app(settings, nobody, TopicSettings())) as http:
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        response = http.post("/v1/jobs", json={"type": "demo.echo", "payload": 1}, headers={"Idempotency-Key": "k1"})
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/problem+json"
    assert "same Idempotency-Key is safe" in response.json()["detail"]
