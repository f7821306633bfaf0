"""The processor-memory row: RSS ratio between the marks, the rate, and runs that fell short. Pure code."""

from __future__ import annotations

import pytest

from bench.processor_memory import RssSample, RssWatch
from bench.scenarios.processor_memory import FULL_MARKS, memory_row

MIB = 1024 * 1024


def _watch(*samples: tuple[int, float, float], completed: int = 500_000) -> RssWatch:
    return RssWatch([RssSample(jobs, int(mib * MIB), at) for jobs, mib, at in samples], completed)


def test_flat_memory_gives_the_ratio_and_the_rate_between_the_marks() -> None:
    row = memory_row(1, _watch((100_000, 100.0, 10.0), (500_000, 104.0, 110.0)), FULL_MARKS, 500_000)
    assert row.throughput == pytest.approx(4_000.0)
    assert row.lost == 0
    assert "RSS 100.0 MiB at job 100,000 → 104.0 MiB at 500,000: 1.040x, flat" in row.notes


def test_growing_memory_is_called_out() -> None:
    row = memory_row(1, _watch((100_000, 100.0, 10.0), (500_000, 150.0, 110.0)), FULL_MARKS, 500_000)
    assert "1.500x, NOT flat" in row.notes


def test_a_run_that_never_reached_the_last_mark_says_how_far_it_got() -> None:
    row = memory_row(2, _watch((100_000, 100.0, 10.0), completed=180_000), FULL_MARKS, 500_000)
    assert row.throughput is None
    assert row.lost == 320_000
    assert row.notes.startswith("only 180,000 of 500,000 jobs completed in time (RSS 100,000: 100.0 MiB)")
