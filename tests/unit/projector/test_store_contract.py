"""One contract, every store: memory, SQLite and PostgreSQL run the same `StoreContract` tests."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from jobrelay.jobs.events import JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.jobs.state import JobState, JobStatus, evolve
from jobrelay.projector.store import (
    Cursor,
    JobQuery,
    JobRow,
    Loaded,
    MemoryStore,
    PostgresStore,
    SqliteStore,
    ViewStore,
)
from jobrelay.projector.store.postgres import MIGRATIONS

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STALL = timedelta(seconds=60)


def _job(
    created: datetime, status: JobStatus = JobStatus.ACCEPTED, job_type: str = "t", tenant: str | None = None
) -> JobRow:
    job = str(uuid.uuid4())
    requested = JobRequested(job_id=job, job_type=job_type, payload="{}", occurred_at=created, tenant=tenant)
    state: JobState = evolve(None, requested, requested_topic="r")
    if status in (JobStatus.RUNNING, JobStatus.SUCCEEDED):
        started = JobProgress(
            job_id=job,
            job_type=job_type,
            sequence=sequence(1, 1),
            kind=ProgressKind.STARTED,
            occurred_at=created + timedelta(seconds=1),
        )
        state = evolve(state, started, requested_topic="r")
    if status is JobStatus.SUCCEEDED:
        done = JobCompleted(
            job_id=job,
            job_type=job_type,
            sequence=terminal_sequence(1),
            result="1",
            status=TerminalStatus.SUCCEEDED,
            occurred_at=created + timedelta(seconds=2),
        )
        state = evolve(state, done, requested_topic="r")
    return JobRow(state, version=1, applied=1)


class StoreContract:
    """What every ViewStore must do; subclasses provide the `store` fixture."""

    async def test_rows_and_positions_are_written_together_and_read_back(self, store: ViewStore) -> None:
        row = _job(T0)
        await store.write([row], {("t.job-requested", 2): 41})
        assert await store.get(row.job_id) == row
        assert await store.positions() == {("t.job-requested", 2): 41}
        loaded = await store.load([row.job_id, "missing"])
        assert loaded.rows == {row.job_id: row}
        assert loaded.purged == frozenset()

    async def test_a_failed_write_stores_nothing(self, store: ViewStore) -> None:
        broken = JobRow(JobState(job_id=str(uuid.uuid4())), 1, 1)  # a job without any event cannot be stored
        with pytest.raises(ValueError, match="no event"):
            await store.write([_job(T0), broken], {("t.job-progress", 0): 9})
        assert await store.positions() == {}
        assert await store.all_rows() == []

    async def test_update_folds_the_stored_rows_and_writes_them_with_the_positions(self, store: ViewStore) -> None:
        row = _job(T0)
        await store.write([row], {("p", 0): 1})
        fresh = _job(T0)

        def fold(loaded: Loaded) -> list[JobRow]:
            assert loaded.rows == {row.job_id: row}
            return [JobRow(loaded.rows[row.job_id].state, 2, 2), fresh]

        written = await store.update([row.job_id, fresh.job_id], fold, {("p", 0): 3})
        assert written == [JobRow(row.state, 2, 2), fresh]
        assert await store.all_rows() == sorted(written, key=lambda r: r.job_id)
        assert await store.positions() == {("p", 0): 3}

    async def test_an_update_whose_fold_fails_stores_nothing(self, store: ViewStore) -> None:
        row = _job(T0)
        await store.write([row], {("p", 0): 1})

        def fold(loaded: Loaded) -> list[JobRow]:
            raise RuntimeError("the fold broke")

        with pytest.raises(RuntimeError, match="the fold broke"):
            await store.update([row.job_id], fold, {("p", 0): 9})
        broken = JobRow(JobState(job_id=str(uuid.uuid4())), 1, 1)
        with pytest.raises(ValueError, match="no event"):
            await store.update([], lambda _: [_job(T0), broken], {("p", 0): 9})
        assert await store.all_rows() == [row]
        assert await store.positions() == {("p", 0): 1}
        assert (await store.load([row.job_id])).rows == {row.job_id: row}

    async def test_a_newer_row_replaces_the_older(self, store: ViewStore) -> None:
        row = _job(T0)
        newer = JobRow(row.state, 2, 5)
        await store.write([row], {("p", 0): 1})
        await store.write([newer], {("p", 0): 5})
        assert await store.all_rows() == [newer]
        assert await store.positions() == {("p", 0): 5}

    async def test_filters_and_pages_newest_first(self, store: ViewStore) -> None:
        rows = [
            _job(T0 + timedelta(minutes=i), status)
            for i, status in enumerate([JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCEEDED] * 3)
        ]
        rows.append(_job(T0 + timedelta(minutes=20), job_type="other"))
        await store.write(rows, {})
        now = T0 + timedelta(minutes=10)
        everything = await store.query(JobQuery(now=now, stall_after=timedelta(days=1), limit=100))
        assert [r.job_id for r in everything] == [r.job_id for r in reversed(rows)]
        done = await store.query(JobQuery(now=now, stall_after=STALL, statuses=frozenset({JobStatus.SUCCEEDED})))
        assert [r.job_id for r in done] == [rows[8].job_id, rows[5].job_id, rows[2].job_id]
        stalled = await store.query(
            JobQuery(now=now, stall_after=timedelta(minutes=5), statuses=frozenset({JobStatus.STALLED}))
        )
        assert [r.job_id for r in stalled] == [rows[4].job_id, rows[1].job_id]
        running = await store.query(
            JobQuery(now=now, stall_after=timedelta(minutes=5), statuses=frozenset({JobStatus.RUNNING}))
        )
        assert [r.job_id for r in running] == [rows[7].job_id]
        other = await store.query(JobQuery(now=now, stall_after=STALL, types=frozenset({"other"})))
        assert [r.job_id for r in other] == [rows[9].job_id]
        window = await store.query(
            JobQuery(
                now=now,
                stall_after=STALL,
                created_after=T0 + timedelta(minutes=3),
                created_before=T0 + timedelta(minutes=5),
            )
        )
        assert [r.job_id for r in window] == [rows[4].job_id, rows[3].job_id]

    async def test_a_tenant_lists_only_its_own_jobs_and_an_operator_every_one(self, store: ViewStore) -> None:
        acme = [_job(T0 + timedelta(seconds=i), tenant="acme") for i in range(3)]
        globex = [_job(T0 + timedelta(seconds=10 + i), tenant="globex") for i in range(2)]
        unnamed = _job(T0 + timedelta(seconds=20))  # published without a tenant: the default tenant's
        await store.write([*acme, *globex, unnamed], {("r", 0): 6})

        async def ids(**filters: object) -> list[str]:
            rows = await store.query(JobQuery(now=T0, stall_after=STALL, **filters))  # type: ignore[arg-type]
            return [r.job_id for r in rows]

        assert await ids(tenant="acme") == [r.job_id for r in reversed(acme)]
        assert await ids(tenant="globex", limit=1) == [globex[-1].job_id]
        assert await ids(tenant="anonymous") == [unnamed.job_id]
        assert await ids(tenant="nobody") == []
        assert len(await ids()) == 6, "no tenant filter: every tenant's jobs (operators)"

    async def test_cursor_pages_cover_everything_once(self, store: ViewStore) -> None:
        same_time = [_job(T0) for _ in range(7)]  # equal creation times: the id breaks the tie
        await store.write(same_time, {})
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await store.query(JobQuery(now=T0, stall_after=STALL, after=cursor, limit=3))
            if not page:
                break
            seen += [r.job_id for r in page]
            last = page[-1].state
            assert last.created_at is not None
            cursor = Cursor(last.created_at, last.job_id)
        assert sorted(seen) == sorted(r.job_id for r in same_time)
        assert len(seen) == len(set(seen))

    async def test_purge_drops_old_terminal_jobs_and_remembers_them(self, store: ViewStore) -> None:
        old_done, old_running = _job(T0, JobStatus.SUCCEEDED), _job(T0, JobStatus.RUNNING)
        new_done = _job(T0 + timedelta(days=2), JobStatus.SUCCEEDED)
        await store.write([old_done, new_done, old_running], {})
        now = T0 + timedelta(days=3)
        assert await store.purge(T0 + timedelta(days=1), now) == [old_done.job_id]
        assert await store.get(old_done.job_id) is None
        assert await store.purged_at(old_done.job_id) == now
        assert await store.purged_at(new_done.job_id) is None
        assert (await store.load([old_done.job_id])).purged == {old_done.job_id}
        assert {r.job_id for r in await store.all_rows()} == {new_done.job_id, old_running.job_id}

    async def test_ids_and_types_with_any_characters_are_stored_and_found(self, store: ViewStore) -> None:
        odd_id, odd_type = "job\x00\\0 \\", "t\x00ype"  # NUL and backslashes, as any producer may send
        requested = JobRequested(job_id=odd_id, job_type=odd_type, payload="{}", occurred_at=T0)
        row = JobRow(evolve(None, requested, requested_topic="r"), 1, 1)
        plain = _job(T0, job_type="t")
        await store.write([row, plain], {})
        assert await store.get(odd_id) == row and (await store.load([odd_id])).rows == {odd_id: row}
        typed = await store.query(JobQuery(now=T0, stall_after=STALL, types=frozenset({odd_type})))
        assert typed == [row]
        cursor = Cursor(T0, odd_id)
        page = await store.query(JobQuery(now=T0, stall_after=STALL, after=cursor))
        assert page == [plain], "the page after the odd id: the UUID, which sorts before 'job…'"

    async def test_changes_come_in_change_order_across_jobs_and_resume_from_a_number(self, store: ViewStore) -> None:
        assert await store.head() == 0
        first, second = _job(T0, tenant="acme"), _job(T0, tenant="globex")
        await store.write([first, second], {})
        mine = _job(T0, tenant="acme")
        await store.write([mine], {})
        await store.write([JobRow(first.state, 2, 2)], {})  # first changes again: now the latest
        changed = await store.changes(0)
        assert [r.job_id for r in changed] == [second.job_id, mine.job_id, first.job_id]
        numbers = [r.change for r in changed]
        assert numbers == sorted(numbers) and len(set(numbers)) == 3 and numbers[-1] == await store.head()
        assert changed[-1].version == 2
        after_second = await store.changes(numbers[0])
        assert [r.job_id for r in after_second] == [mine.job_id, first.job_id], "nothing at or before the number"
        assert [r.job_id for r in await store.changes(0, tenant="acme")] == [mine.job_id, first.job_id]
        assert [r.job_id for r in await store.changes(0, job_ids=[second.job_id, "missing"])] == [second.job_id]
        assert [r.job_id for r in await store.changes(0, limit=1)] == [second.job_id]
        assert await store.changes(await store.head()) == []

    async def test_a_row_written_again_without_a_new_version_keeps_its_change_number(self, store: ViewStore) -> None:
        row = _job(T0)
        await store.write([row], {})
        (before,) = await store.changes(0)
        await store.write([JobRow(row.state, 1, 2)], {})  # a duplicate record: applied grows, the version does not
        assert await store.changes(before.change) == [], "a stream must not send the same version again"
        assert (await store.get(row.job_id)) == JobRow(row.state, 1, 2)


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[ViewStore]:
        store = MemoryStore()
        yield store
        await store.close()


class TestSqliteStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ViewStore]:
        store = await SqliteStore.open(tmp_path / "view.sqlite")
        yield store
        await store.close()

    async def test_the_view_survives_reopening(self, tmp_path: Path) -> None:
        row = _job(T0, JobStatus.RUNNING)
        first = await SqliteStore.open(tmp_path / "v.sqlite")
        await first.write([row], {("p", 1): 3})
        await first.close()
        again = await SqliteStore.open(tmp_path / "v.sqlite")
        try:
            assert await again.get(row.job_id) == row
            assert await again.positions() == {("p", 1): 3}
            last = await again.head()
            await again.write([_job(T0)], {})
            assert await again.head() > last > 0, "change numbers keep increasing after a restart"
        finally:
            await again.close()

    async def test_a_view_made_before_change_numbers_gets_the_column(self, tmp_path: Path) -> None:
        path = tmp_path / "old.sqlite"
        connection = sqlite3.connect(path)
        connection.executescript(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, type TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL, activity_at TEXT, finished_at TEXT, version INTEGER NOT NULL,"
            " applied INTEGER NOT NULL, state TEXT NOT NULL, tenant TEXT) WITHOUT ROWID;"
        )
        connection.close()
        store = await SqliteStore.open(path)
        try:
            row = _job(T0)
            await store.write([row], {})
            assert [r.job_id for r in await store.changes(0)] == [row.job_id]
        finally:
            await store.close()


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[ViewStore]:
        store = await PostgresStore.open(postgres_dsn)
        yield store
        await store.close()

    async def test_the_view_survives_reopening_and_migrates_once(self, postgres_dsn: str) -> None:
        row = _job(T0, JobStatus.RUNNING)
        first = await PostgresStore.open(postgres_dsn)
        await first.write([row], {("p", 1): 3})
        await first.close()
        again = await PostgresStore.open(postgres_dsn)
        try:
            assert await again.get(row.job_id) == row
            assert await again.positions() == {("p", 1): 3}
        finally:
            await again.close()
        connection = await asyncpg.connect(postgres_dsn)
        try:
            steps = await connection.fetch("SELECT component, version FROM schema_migrations ORDER BY version")
        finally:
            await connection.close()
        assert [tuple(step) for step in steps] == [("projector", m.version) for m in MIGRATIONS]
