"""Where the projector and the notifier keep their state: one switch for both, a variable of each to override it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobrelay.config.settings import LOCAL_POSTGRES_DSN
from jobrelay.dev.localpostgres import LocalPostgres
from jobrelay.dev.stack import Stack
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.projector.settings import ProjectorSettings


def test_sqlite_is_the_default_and_postgres_defaults_to_the_local_server() -> None:
    projector, notifier = ProjectorSettings(), NotifierSettings()
    assert (projector.store, notifier.store) == ("sqlite", "sqlite")
    assert projector.postgres_dsn == notifier.postgres_dsn == LOCAL_POSTGRES_DSN == LocalPostgres().dsn


def test_one_switch_moves_both_services_to_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_STORE", "postgres")
    monkeypatch.setenv("JOBRELAY_POSTGRES_DSN", "postgresql://app:pw@db.internal:5432/jobs")
    projector, notifier = ProjectorSettings(), NotifierSettings()
    assert (projector.store, notifier.store) == ("postgres", "postgres")
    assert projector.postgres_dsn == notifier.postgres_dsn == "postgresql://app:pw@db.internal:5432/jobs"
    assert "pw@" not in repr(projector) and "pw@" not in repr(notifier), "a DSN's password is never shown"


def test_a_services_own_variables_win_over_the_shared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_STORE", "postgres")
    monkeypatch.setenv("JOBRELAY_POSTGRES_DSN", "postgresql://shared/jobs")
    monkeypatch.setenv("JOBRELAY_PROJECTOR_STORE", "memory")
    monkeypatch.setenv("JOBRELAY_NOTIFIER_POSTGRES_DSN", "postgresql://own/deliveries")
    assert ProjectorSettings().store == "memory"
    assert NotifierSettings().postgres_dsn == "postgresql://own/deliveries"


def test_the_notifier_has_no_memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRELAY_NOTIFIER_STORE", "memory")
    with pytest.raises(ValidationError, match="'sqlite' or 'postgres'"):
        NotifierSettings()


def test_the_local_stack_starts_postgres_only_when_switched_to_it_without_a_dsn(tmp_path: Path) -> None:
    def uses(env: dict[str, str]) -> bool:
        return Stack(env=env, run_dir=tmp_path).uses_local_postgres

    assert not uses({}) and not uses({"JOBRELAY_STORE": "sqlite"})
    assert uses({"JOBRELAY_STORE": "postgres"})
    assert not uses({"JOBRELAY_STORE": "postgres", "JOBRELAY_POSTGRES_DSN": "postgresql://db.internal/jobs"})
