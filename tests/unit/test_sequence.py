"""Sequence numbers order a job's events across attempts."""

from __future__ import annotations

import pytest

from jobrelay.jobs.sequence import REQUESTED, attempt_of, sequence, terminal_sequence


def test_later_attempts_sort_after_everything_of_earlier_ones() -> None:
    assert REQUESTED < sequence(1, 1) < sequence(1, 500) < terminal_sequence(1) < sequence(2, 1)
    assert attempt_of(sequence(3, 7)) == 3
    assert attempt_of(terminal_sequence(3)) == 3
    assert attempt_of(REQUESTED) == 0


@pytest.mark.parametrize(("attempt", "n"), [(0, 1), (1, 0), (1, 999_999)])
def test_out_of_range_is_refused(attempt: int, n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        sequence(attempt, n)
