"""The status-view poller: finds the submitted jobs whose row says SUCCEEDED, read-only."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.loadgen import CompletionLog
from bench.viewpoll import ViewPoller, succeeded_among


def _view(path: Path, rows: dict[str, str]) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL)")
        db.executemany("INSERT INTO jobs VALUES (?, ?)", rows.items())


def test_only_succeeded_rows_among_the_ids_asked_for(tmp_path: Path) -> None:
    _view(tmp_path / "v.sqlite", {"a": "SUCCEEDED", "b": "RUNNING", "c": "SUCCEEDED"})
    with sqlite3.connect(tmp_path / "v.sqlite") as db:
        assert sorted(succeeded_among(db, ["a", "b", "x"])) == ["a"]
        many = [f"id{i}" for i in range(1_200)] + ["c"]  # more than one chunk of ids
        assert succeeded_among(db, many) == ["c"]


async def test_watched_submits_complete_when_their_row_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    _view(path, {"a": "SUCCEEDED", "b": "ACCEPTED"})
    log = CompletionLog()
    poller = ViewPoller(path, log)
    ids = iter(["a", "b"])

    async def submit(index: int) -> str:
        return next(ids)

    watched = poller.watch(submit)
    assert [await watched(0), await watched(1)] == ["a", "b"]
    log.expect(["a", "b"])
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert poller.poll_once(db) == 1
    assert log.pending == 1
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE jobs SET status = 'SUCCEEDED' WHERE id = 'b'")
    assert poller.poll_once(db) == 1
    assert poller.poll_once(db) == 0  # nothing left to look for
    assert log.pending == 0
    db.close()


async def test_the_polling_thread_completes_jobs_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    _view(path, {"a": "SUCCEEDED"})
    log = CompletionLog()
    poller = ViewPoller(path, log, interval=0.001)

    async def submit(index: int) -> str:
        return "a"

    log.expect([await poller.watch(submit)(0)])
    with poller.running():
        assert await log.wait(deadline=time.perf_counter() + 5)
