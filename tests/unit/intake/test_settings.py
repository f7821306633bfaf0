"""Intake settings from the environment."""

from __future__ import annotations

import pytest

from jobrelay.intake.settings import IntakeSettings


def test_lists_are_comma_separated_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_INTAKE_ALLOWED_TYPES", "report.*, demo.echo")
    monkeypatch.setenv("JOBRELAY_INTAKE_CALLBACK_ALLOWED_NETWORKS", "10.1.0.0/16")
    monkeypatch.setenv("JOBRELAY_INTAKE_MAX_PAYLOAD_BYTES", "1000")
    limits = IntakeSettings().limits()
    assert limits.allowed_types == ("report.*", "demo.echo")
    assert limits.allows_type("report.monthly") and not limits.allows_type("payroll.run")
    assert [str(n) for n in limits.url_policy.allowed_networks] == ["10.1.0.0/16"]
    assert limits.max_payload_bytes == 1000


def test_defaults_listen_on_loopback_port_8000() -> None:
    settings = IntakeSettings()
    assert (settings.host, settings.port, settings.client_id_header) == ("127.0.0.1", 8000, "X-Client-Id")
    assert settings.limits().allows_type("anything.at.all")
