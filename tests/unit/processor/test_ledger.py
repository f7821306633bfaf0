"""The ledger: what a restarted processor learns from the commit metadata."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobrelay.processor.ledger import Attempted, Ledger
from jobrelay.processor.settings import METADATA_LIMIT, ProcessorSettings


def test_the_commit_point_is_the_lowest_unfinished_offset() -> None:
    ledger = Ledger(10)
    for offset in (10, 11, 12):
        ledger.received(offset)
    ledger.finish(11)
    ledger.finish(12)
    assert ledger.commit_point() == 10 and ledger.window == 3
    ledger.finish(10)
    assert ledger.commit_point() == 13 and ledger.window == 0 and ledger.pending == 0


def test_a_restart_skips_finished_jobs_and_continues_attempts() -> None:
    ledger = Ledger(100)
    for offset in range(100, 105):
        ledger.received(offset)
    ledger.attempted(100, Attempted(1))  # running when the process died
    ledger.attempted(101, Attempted(2, retry_at_ms=1_700_000_000_000))  # waiting for its retry
    ledger.finish(103)
    restored = Ledger.restore(ledger.commit_point(), ledger.metadata())
    assert restored.commit_point() == 100
    assert [restored.is_done(o) for o in range(100, 105)] == [False, False, False, True, False]
    assert restored.previous_attempt(100) == Attempted(1)
    assert restored.previous_attempt(101) == Attempted(2, 1_700_000_000_000)
    assert restored.previous_attempt(102) is None


def test_metadata_of_another_tool_or_none_starts_afresh() -> None:
    for metadata in ("", "something else", "jr0;x;y"):
        ledger = Ledger.restore(5, metadata)
        assert ledger.commit_point() == 5 and not ledger.is_done(6) and ledger.previous_attempt(5) is None


@given(st.sets(st.integers(0, 4999), max_size=4999), st.sets(st.integers(0, 4999), max_size=100))
def test_round_trip_and_the_worst_case_fits_kafkas_metadata_limit(done: set[int], attempted: set[int]) -> None:
    settings = ProcessorSettings()
    ledger = Ledger(0)
    for offset in range(5000):
        ledger.received(offset)
    for offset in attempted - done - {0}:
        ledger.attempted(offset, Attempted(99, 1_800_000_000_000))
    for offset in done - {0}:
        ledger.finish(offset)
    metadata = ledger.metadata()
    assert len(metadata) <= METADATA_LIMIT or len(attempted - done) > settings.max_pending_per_partition
    restored = Ledger.restore(0, metadata)
    assert {o for o in range(5000) if restored.is_done(o)} == done - {0}
    assert {o for o in range(5000) if restored.previous_attempt(o)} == attempted - done - {0}
