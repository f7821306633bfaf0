"""Versioned schema migrations on the real PostgreSQL: each step once, in order, never past the code's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobrelay.storage.postgres import Migration, MigrationError, migrate

pytestmark = pytest.mark.postgres

FIRST = Migration(1, "notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY)")
SECOND = Migration(2, "notes get a text", "ALTER TABLE notes ADD COLUMN text TEXT NOT NULL DEFAULT ''")


@pytest.fixture
async def connection(postgres_dsn: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(postgres_dsn)
    yield connection
    await connection.close()


async def _ledger(connection: Any) -> list[tuple[str, int, str]]:
    rows = await connection.fetch("SELECT component, version, name FROM schema_migrations ORDER BY component, version")
    return [tuple(row) for row in rows]


async def test_steps_apply_once_in_order_and_a_later_step_alone(connection: Any) -> None:
    assert await migrate(connection, "demo", [FIRST]) == [1]
    assert await migrate(connection, "demo", [FIRST]) == [], "opening again changes nothing"
    assert await migrate(connection, "demo", [FIRST, SECOND]) == [2], "the new code's step, and only it"
    await connection.execute("INSERT INTO notes (id, text) VALUES (1, 'kept')")
    assert await connection.fetchval("SELECT text FROM notes") == "kept"
    assert await _ledger(connection) == [("demo", 1, "notes"), ("demo", 2, "notes get a text")]


async def test_components_keep_their_own_versions_in_one_database(connection: Any) -> None:
    await migrate(connection, "demo", [FIRST, SECOND])
    other = Migration(1, "other table", "CREATE TABLE other_things (id INTEGER)")
    assert await migrate(connection, "other", [other]) == [1]
    assert [(c, v) for c, v, _ in await _ledger(connection)] == [("demo", 1), ("demo", 2), ("other", 1)]


async def test_a_schema_newer_than_the_code_is_refused(connection: Any) -> None:
    await migrate(connection, "demo", [FIRST, SECOND])
    with pytest.raises(MigrationError, match="at version 2, newer than this code's 1"):
        await migrate(connection, "demo", [FIRST])


async def test_a_failing_step_leaves_the_schema_as_it_was(connection: Any) -> None:
    await migrate(connection, "demo", [FIRST])
    broken = Migration(2, "broken", "ALTER TABLE notes ADD COLUMN text TEXT; ALTER TABLE no_such_table ADD x INT")
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(connection, "demo", [FIRST, broken])
    columns = await connection.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'notes'")
    assert [c[0] for c in columns] == ["id"], "all of a step or none of it"
    assert [v for _, v, _ in await _ledger(connection)] == [1]


async def test_steps_must_be_numbered_from_one_without_gaps(connection: Any) -> None:
    with pytest.raises(MigrationError, match="numbered 1, 2, 3"):
        await migrate(connection, "demo", [FIRST, Migration(3, "gap", "SELECT 1")])
