"""The SQLite view's tables and statements, as plain functions on a `sqlite3` connection.

They run in the store's threads (one call per batch, not one per statement) or, in a rebuild,
directly. Every write is one `BEGIN IMMEDIATE … COMMIT`: rows and positions together or neither.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from jobrelay.jobs.state import JobStatus
from jobrelay.projector.store.base import ChangeClock, JobQuery, Loaded, Position
from jobrelay.projector.store.rows import JobRow, from_json, iso, to_json

__all__ = [
    "changed_row_of",
    "changes_sql",
    "connect",
    "head",
    "load",
    "params",
    "positions",
    "purge",
    "query_sql",
    "row_of",
    "transaction",
    "write",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, type TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  activity_at TEXT, finished_at TEXT, version INTEGER NOT NULL, applied INTEGER NOT NULL,
  state TEXT NOT NULL, tenant TEXT, changed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS positions (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, purged_at TEXT NOT NULL) WITHOUT ROWID;
"""
# Views made before tenants: add the column, fill it from the stored states (a state SQLite's JSON
# cannot read — NaN — stays NULL: its job is then listed for operators only, and still found by id).
_ADD_TENANT = """
ALTER TABLE jobs ADD COLUMN tenant TEXT;
UPDATE jobs SET tenant = CASE WHEN json_valid(state)
  THEN coalesce(json_extract(state, '$.request[8]'), 'anonymous') END;
"""
_TENANT_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, created_at, id)"
# Views made before the many-job streams: their rows keep change number 0 until they change again.
_ADD_CHANGED = "ALTER TABLE jobs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0"
_CHANGE_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_change ON jobs (changed);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_change ON jobs (tenant, changed);
"""
_UPSERT = """
INSERT INTO jobs (id, type, status, created_at, updated_at, activity_at, finished_at, version, applied, state, tenant,
  changed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, created_at = excluded.created_at,
  updated_at = excluded.updated_at, activity_at = excluded.activity_at, finished_at = excluded.finished_at,
  changed = CASE WHEN excluded.version = jobs.version THEN jobs.changed ELSE excluded.changed END,
  version = excluded.version, applied = excluded.applied, state = excluded.state, tenant = excluded.tenant
"""
_POSITION = """
INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
"""
_CHUNK = 500  # ids per IN (…) query, well under SQLite's variable limit


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    """A connection for the store's threads; the writer's creates the tables (WAL: readers never wait)."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False: opened here,
    # used only by the store's one thread for it.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives a process crash
    if writer:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.executescript(_SCHEMA)
        columns = {record[1] for record in connection.execute("PRAGMA table_info(jobs)")}
        if "tenant" not in columns:
            connection.executescript(f"BEGIN; {_ADD_TENANT} COMMIT;")
        if "changed" not in columns:
            connection.execute(_ADD_CHANGED)
        connection.execute(_TENANT_INDEX)
        connection.executescript(_CHANGE_INDEXES)
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:  # some errors end the transaction themselves
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def params(row: JobRow) -> tuple[Any, ...]:
    """The row's column values (ValueError for a job that has no event yet)."""
    state = row.state
    created, last = state.created_at, state.last_at
    if created is None or last is None:
        raise ValueError(f"job {state.job_id} has no event yet and cannot be stored")
    activity = iso(state.activity_at) if state.activity_at is not None else None
    finished = iso(state.outcome.at) if state.outcome is not None else None
    job_type, status = state.job_type, state.status.value
    return (state.job_id, job_type, status, iso(created), iso(last), activity, finished, row.version, row.applied,
            to_json(state), state.tenant)  # fmt: skip


def row_of(record: Any) -> JobRow:
    """A JobRow from (version, applied, state)."""
    version, applied, state = record
    return JobRow(from_json(state), version, applied)


def changed_row_of(record: Any) -> JobRow:
    """A JobRow from (version, applied, state, changed)."""
    version, applied, state, changed = record
    return JobRow(from_json(state), version, applied, changed)


def _chunks(ids: Collection[str]) -> Iterator[list[str]]:
    items = list(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def load(connection: sqlite3.Connection, job_ids: Collection[str]) -> Loaded:
    """Stored rows of `job_ids` and the purged among them."""
    rows: dict[str, JobRow] = {}
    purged: set[str] = set()
    for chunk in _chunks(job_ids):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT version, applied, state FROM jobs WHERE id IN ({marks})"  # noqa: S608 (placeholders only)
        rows.update((row.job_id, row) for row in map(row_of, connection.execute(sql, chunk)))
        sql = f"SELECT id FROM tombstones WHERE id IN ({marks})"  # noqa: S608
        purged.update(record[0] for record in connection.execute(sql, chunk))
    return Loaded(rows, frozenset(purged))


def write(
    connection: sqlite3.Connection, encoded: Iterable[tuple[Any, ...]], at: Mapping[Position, int], clock: ChangeClock
) -> None:
    """Upsert encoded rows (`params`) and positions, inside the caller's transaction; `clock` numbers the changes."""
    ordered = sorted(encoded, key=itemgetter(0))  # in key order: the B-tree fills in order
    first = clock.take(len(ordered))
    connection.executemany(_UPSERT, [(*values, first + n) for n, values in enumerate(ordered)])
    connection.executemany(_POSITION, [(t, p, o) for (t, p), o in at.items()])


def head(connection: sqlite3.Connection) -> int:
    """The latest change number (0 for an empty view)."""
    return int(connection.execute("SELECT coalesce(max(changed), 0) FROM jobs").fetchone()[0])


def changes_sql(after: int, job_ids: Collection[str] | None, tenant: str | None, limit: int) -> tuple[str, list[Any]]:
    """The SELECT of the jobs changed after `after` (in change order) and its parameters."""
    clauses: list[str] = ["changed > ?"]
    args: list[Any] = [after]
    if tenant is not None:
        clauses.append("tenant = ?")
        args.append(tenant)
    if job_ids is not None:
        ids = sorted(job_ids)
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        args += ids
    where = " AND ".join(clauses)
    return f"SELECT version, applied, state, changed FROM jobs WHERE {where} ORDER BY changed LIMIT ?", [*args, limit]  # noqa: S608


def positions(connection: sqlite3.Connection) -> dict[Position, int]:
    """The next offset to read per (topic, partition)."""
    return {(t, p): o for t, p, o in connection.execute("SELECT topic, partition, next_offset FROM positions")}


def purge(connection: sqlite3.Connection, terminal_before: datetime, now: datetime) -> list[str]:
    """Drop jobs that finished before `terminal_before`, leaving tombstones (one transaction)."""
    with transaction(connection):
        sql = "SELECT id FROM jobs WHERE finished_at < ? ORDER BY id"
        gone = [record[0] for record in connection.execute(sql, (iso(terminal_before),))]
        connection.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in gone])
        stamp = iso(now)
        connection.executemany(
            "INSERT OR REPLACE INTO tombstones (id, purged_at) VALUES (?, ?)", [(i, stamp) for i in gone]
        )
    return gone


def query_sql(query: JobQuery) -> tuple[str, list[Any]]:
    """The SELECT of `query` (newest first) and its parameters."""
    where, args = _where(query)
    sql = f"SELECT version, applied, state FROM jobs{where} ORDER BY created_at DESC, id DESC LIMIT ?"  # noqa: S608
    return sql, [*args, query.limit]


def _where(query: JobQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if query.statuses:
        ors, status_args = _status_clauses(query)
        clauses.append(f"({' OR '.join(ors)})")
        args += status_args
    if query.tenant is not None:
        clauses.append("tenant = ?")
        args.append(query.tenant)
    if query.types:
        clauses.append(f"type IN ({','.join('?' * len(query.types))})")
        args += sorted(query.types)
    if query.created_after is not None:
        clauses.append("created_at >= ?")
        args.append(iso(query.created_after))
    if query.created_before is not None:
        clauses.append("created_at < ?")
        args.append(iso(query.created_before))
    if query.after is not None:
        clauses.append("(created_at, id) < (?, ?)")
        args += [iso(query.after.created_at), query.after.job_id]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _status_clauses(query: JobQuery) -> tuple[list[str], list[Any]]:
    """STALLED and RUNNING share the stored status RUNNING; the last sign of life tells them apart."""
    cutoff = iso(query.now - query.stall_after)
    ors: list[str] = []
    args: list[Any] = []
    for status in sorted(query.statuses):
        if status is JobStatus.RUNNING:
            ors.append("(status = 'RUNNING' AND activity_at >= ?)")
            args.append(cutoff)
        elif status is JobStatus.STALLED:
            ors.append("(status = 'RUNNING' AND activity_at < ?)")
            args.append(cutoff)
        else:
            ors.append("status = ?")
            args.append(status.value)
    return ors, args
