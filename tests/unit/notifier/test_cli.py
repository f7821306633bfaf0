"""`jobrelay notifier deliveries` and `enable-url`, on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobrelay.cli.main import app
from jobrelay.notifier.store import Completion, NewDelivery
from jobrelay.notifier.store.sqlite import SqliteDeliveryStore


async def _prepare(path: Path) -> None:
    store = await SqliteDeliveryStore.open(path)
    completion = Completion("evt-7", "job-7", "t", b"{}", "job-completed", 0, 7, None, b"v", ())
    await store.record([(completion, [NewDelivery("https://hooks.example/in?token=secret")])], {}, now=1.0)
    await store.disable_url("https://gone.example/h", 410, "answered 410", now=1.0)
    await store.close()


def test_operators_see_deliveries_and_re_enable_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "n.sqlite3"
    asyncio.run(_prepare(database))
    monkeypatch.setenv("JOBRELAY_NOTIFIER_DATABASE", str(database))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    shown = runner.invoke(app, ["notifier", "deliveries", "job-7"])
    assert shown.exit_code == 0 and "evt-7" in shown.output and "pending" in shown.output
    assert "token=secret" not in shown.output, "query strings may hold a receiver's tokens"
    assert runner.invoke(app, ["notifier", "enable-url", "https://gone.example/h"]).exit_code == 0
    again = runner.invoke(app, ["notifier", "enable-url", "https://gone.example/h"])
    assert again.exit_code == 1 and "was not disabled" in again.output
