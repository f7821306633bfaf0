"""PostgreSQL for the stores: an asyncpg pool whose schema is migrated, in numbered steps, as it opens.

Each store names its `component` ("projector", "notifier") and lists its migrations, numbered
from 1, each one a SQL script that is never edited once released (a change is a new step). The
applied steps are rows of `schema_migrations (component, version, name, applied_at)`, so the
services can share one database. Opening applies the missing steps in one transaction (DDL is
transactional in PostgreSQL) under an advisory lock, so replicas starting together migrate once;
a database migrated by newer code than ours is refused rather than misread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

__all__ = ["Migration", "MigrationError", "from_text", "migrate", "open_pool", "to_text"]

# pg_advisory_xact_lock key of the migrations (any constant; "jrmigrat" in ASCII).
_LOCK = 0x6A726D6967726174
_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (component, version)
)
"""


_ESCAPED = re.compile(r"\\([\\0])")


def to_text(value: str) -> str:
    """`value` as PostgreSQL text, which cannot hold NUL: `\\` is doubled and NUL becomes `\\0`.

    Any producer can put a NUL in an id or a URL, and a value that cannot be stored would stop
    the consumer at that record; SQLite stores it as it is. Text without either character (every
    id, type and URL jobrelay makes) is unchanged, so its order and its lookups are too.
    """
    if "\\" not in value and "\x00" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\x00", "\\0")


def from_text(value: str) -> str:
    """The inverse of `to_text`."""
    if "\\" not in value:
        return value
    return _ESCAPED.sub(lambda match: "\x00" if match.group(1) == "0" else "\\", value)


class MigrationError(RuntimeError):
    """The database's schema cannot be brought to the version this code needs."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a component's schema."""

    version: int
    name: str
    sql: str


async def migrate(connection: asyncpg.Connection, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the steps of `component` the database lacks, in order, in one transaction; the versions applied."""
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise MigrationError(f"the {component} migrations must be numbered 1, 2, 3, …")
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await connection.execute(_LEDGER)
        rows = await connection.fetch("SELECT version FROM schema_migrations WHERE component = $1", component)
        done = {int(row[0]) for row in rows}
        if done and max(done) > len(migrations):
            raise MigrationError(
                f"the {component} schema is at version {max(done)}, newer than this code's {len(migrations)}"
            )
        for step in migrations:
            if step.version in done:
                continue
            await connection.execute(step.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                component,
                step.version,
                step.name,
            )
            applied.append(step.version)
    return applied


async def open_pool(dsn: str, component: str, migrations: Sequence[Migration], *, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool on `dsn` whose schema is migrated to the newest of `migrations`.

    The DSN is libpq's URL or key=value form; other query parameters become session settings
    (`?search_path=tenant_a` puts the tables in that schema).
    """
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    try:
        async with pool.acquire() as connection:
            await migrate(connection, component, migrations)
    except BaseException:
        await pool.close()
        raise
    return pool
