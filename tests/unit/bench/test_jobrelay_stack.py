"""The services' bench settings are valid, and the scenario registry knows jobrelay's scenarios."""

from __future__ import annotations

import pytest

from bench.jobrelay_kit import NOOP_TYPE
from bench.jobrelay_stack import PROCESSOR_ENV, settings_note, with_settings
from bench.scenario import Measurement
from bench.scenarios import NAMES
from jobrelay.processor.handlers import load_registry
from jobrelay.processor.settings import ProcessorSettings


def test_the_processor_accepts_the_bench_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PROCESSOR_ENV.items():
        monkeypatch.setenv(name, value)
    settings = ProcessorSettings()
    assert settings.handler_modules == ("bench.noop",)
    assert settings.max_in_flight == int(PROCESSOR_ENV["JOBRELAY_PROCESSOR_MAX_IN_FLIGHT"])


def test_the_settings_note_names_each_tuned_setting() -> None:
    assert settings_note() == "in_flight=1000 pending/part=140 commit=0s"
    assert settings_note({}) == ""


def test_only_saturation_rows_carry_the_settings() -> None:
    sat = Measurement("s", "c", "subject", "saturation", 1, 10.0, None, notes="closed")
    opn = Measurement("s", "c", "subject", "open", 1, 10.0, None, offered=200, notes="open")
    assert [r.notes for r in with_settings([sat, opn])] == [f"closed; {settings_note()}", "open"]


def test_the_noop_handler_is_registered_under_the_bench_job_type() -> None:
    registry = load_registry(["bench.noop"])
    assert registry.get(NOOP_TYPE) is not None


def test_jobrelay_scenarios_sit_between_the_limit_and_the_peer() -> None:
    assert NAMES.index("limit") < NAMES.index("jobrelay-http") < NAMES.index("projector-rebuild") < NAMES.index("peer")
    assert {"jobrelay-publisher", "intake-only"} <= set(NAMES)
