"""Latency statistics: percentiles and the summary every row of the table shows. Pure code."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LatencyStats", "percentile", "summarize"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linearly interpolated (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(sorted_values[low])
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency in milliseconds over `count` samples; p95 and max are None where a tool does not report them."""

    count: int
    p50: float
    p95: float | None
    p99: float
    max: float | None
    mean: float | None = None


def summarize(seconds: Iterable[float]) -> LatencyStats | None:
    """p50/p95/p99/max (and mean) in ms of latencies given in seconds; None when there are none."""
    values = sorted(seconds)
    if not values:
        return None
    ms = [v * 1000.0 for v in values]
    return LatencyStats(
        count=len(ms),
        p50=percentile(ms, 50),
        p95=percentile(ms, 95),
        p99=percentile(ms, 99),
        max=ms[-1],
        mean=sum(ms) / len(ms),
    )
