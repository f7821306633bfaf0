"""Small pure pieces of the API: cursors, Prefer parsing, partitions, generations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from jobrelay.messaging.partitioning import partition_for
from jobrelay.projector.api import parse_wait
from jobrelay.projector.store import Cursor, generations
from jobrelay.projector.views import decode_cursor, encode_cursor


def test_a_cursor_survives_the_round_trip_and_garbage_is_refused() -> None:
    cursor = Cursor(datetime(2025, 5, 1, 12, 0, 0, 123000, tzinfo=UTC), str(uuid.uuid4()))
    assert decode_cursor(encode_cursor(cursor)) == cursor
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor("not-a-cursor")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("wait=5", 5.0), ("respond-async, wait=10", 10.0), ("wait=999", 30.0), (None, None), ("wait=soon", None)],
)
def test_prefer_wait_is_read_and_capped(header: str | None, expected: float | None) -> None:
    assert parse_wait(header, 30.0) == expected


def test_partition_for_agrees_with_the_producers_partitioner() -> None:
    for _ in range(200):
        key = str(uuid.uuid4()).encode()
        for count in (1, 3, 12):
            assert partition_for(key, count) == DefaultPartitioner()(key, list(range(count)), [])


def test_a_swap_points_the_view_at_the_new_generation_and_lists_the_old(tmp_path: Path) -> None:
    db = tmp_path / "view.sqlite"
    first = generations.current(db)
    first.write_bytes(b"old")
    second = generations.new_generation(db)
    second.write_bytes(b"new")
    generations.swap(db, second)
    assert generations.current(db) == second
    assert db.read_bytes() == b"new"
    assert generations.older_generations(db, second) == [first]
