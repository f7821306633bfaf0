"""Settings from the environment: lists, subscriptions, secrets that are checked and never shown."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from jobrelay.notifier.settings import NotifierSettings

A = "whsec_" + base64.b64encode(b"a" * 32).decode()
B = "whsec_" + base64.b64encode(b"b" * 32).decode()


def test_lists_come_from_one_variable_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_NOTIFIER_SIGNING_SECRETS", f"{A}, {B}")
    monkeypatch.setenv("JOBRELAY_NOTIFIER_RETRY_SCHEDULE", "1,2.5,60")
    monkeypatch.setenv("JOBRELAY_NOTIFIER_ALLOWED_NETWORKS", '["10.1.0.0/16", "127.0.0.1/32"]')
    subscriptions = [
        {"name": "billing", "url": "https://billing.example/hooks", "job_types": ["invoice.render"], "secrets": B}
    ]
    monkeypatch.setenv("JOBRELAY_NOTIFIER_SUBSCRIPTIONS", json.dumps(subscriptions))
    settings = NotifierSettings()
    assert settings.secrets_for(None) == (A, B)
    assert settings.secrets_for("billing") == (B,)
    assert settings.secrets_for("removed") is None
    assert (settings.retry_schedule, settings.max_attempts) == ((1.0, 2.5, 60.0), 4)
    assert settings.subscriptions[0].matches("invoice.render") and not settings.subscriptions[0].matches("other")
    assert settings.url_policy().allowed_networks[0].prefixlen == 16


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_NOTIFIER_SIGNING_SECRETS", A)
    settings = NotifierSettings()
    assert A not in repr(settings) and A not in str(settings) and A not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("hunter2", "whsec_"),
        ("whsec_not*base64", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64"),
    ],
)
def test_a_bad_secret_is_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch, secret: str, why: str) -> None:
    monkeypatch.setenv("JOBRELAY_NOTIFIER_SIGNING_SECRETS", secret)
    with pytest.raises(ValidationError, match=why):
        NotifierSettings()


def test_a_negative_delay_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_NOTIFIER_RETRY_SCHEDULE", "5,-1")
    with pytest.raises(ValidationError, match="negative"):
        NotifierSettings()


def test_the_defaults_are_the_specs() -> None:
    settings = NotifierSettings()
    assert settings.retry_schedule == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    assert (settings.host, settings.port, settings.allow_http, settings.allowed_networks) == (
        "127.0.0.1",
        8002,
        False,
        (),
    )
    assert settings.status_base_url == "http://127.0.0.1:8001"
