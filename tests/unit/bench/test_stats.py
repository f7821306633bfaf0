"""Percentiles and latency summaries."""

from __future__ import annotations

import pytest

from bench.stats import percentile, summarize


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 99) == pytest.approx(3.97)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("q", [-1.0, 100.5])
def test_percentile_refuses_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_percentile_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summarize_reports_milliseconds_of_unsorted_seconds() -> None:
    stats = summarize([0.003, 0.001, 0.002] + [0.001] * 97)
    assert stats is not None
    assert stats.count == 100
    assert stats.p50 == pytest.approx(1.0)
    assert stats.max == pytest.approx(3.0)
    assert stats.p99 == pytest.approx(2.01)


def test_summarize_of_nothing_is_none() -> None:
    assert summarize([]) is None
