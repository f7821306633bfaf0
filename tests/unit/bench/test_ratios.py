"""Each row's ratios to the limit and the peer."""

from __future__ import annotations

import pytest

from bench.ratios import ratios, references
from bench.scenario import Measurement, Mode, Role
from bench.stats import LatencyStats


def _row(
    case: str,
    role: Role,
    mode: Mode,
    run: int = 1,
    throughput: float | None = None,
    p99: float | None = None,
    offered: float | None = None,
    reference: bool = False,
    kept_up: bool | None = None,
) -> Measurement:
    latency = LatencyStats(1, p99 / 2, None, p99, None) if p99 is not None else None
    if kept_up is None and mode == "open":
        kept_up = True
    return Measurement(
        role, case, role, mode, run, throughput, latency, offered=offered, reference=reference, kept_up=kept_up
    )


ROWS = [
    _row("ProducerPerformance", "limit", "saturation", 1, throughput=40_000, reference=True),
    _row("ProducerPerformance", "limit", "saturation", 2, throughput=20_000, reference=True),
    _row("aiokafka loop", "limit", "saturation", 1, throughput=15_000),
    _row("aiokafka loop", "limit", "open", 1, throughput=500, p99=5.0, offered=500, reference=True),
    _row("aiokafka loop", "limit", "open", 2, throughput=500, p99=7.0, offered=500, reference=True),
    _row("celery", "peer", "saturation", 1, throughput=300),
    _row("celery", "peer", "saturation", 2, throughput=500),
    _row("celery", "peer", "open", 1, throughput=400, p99=300.0, offered=500),
    _row("jobrelay-http", "subject", "saturation", 1, throughput=3_000),
    _row("jobrelay-http", "subject", "open", 1, throughput=500, p99=30.0, offered=500),
    _row("jobrelay-http", "subject", "open", 1, throughput=1_000, p99=40.0, offered=1_000),
]


def test_references_are_medians_of_the_marked_limit_rows_and_of_the_peer() -> None:
    refs = references(ROWS)
    assert refs.limit_throughput is not None
    assert refs.limit_throughput.value == 30_000  # median of 40k and 20k; the unmarked 15k loop is not a reference
    assert refs.peer_throughput is not None
    assert refs.peer_throughput.value == 400
    assert refs.limit_p99[500].value == 6.0
    assert refs.peer_p99[500].value == 300.0


def test_a_subject_row_is_divided_by_the_limit_and_the_peer() -> None:
    refs = references(ROWS)
    saturation = ratios(ROWS[8], refs)
    assert saturation.thr_vs_limit == pytest.approx(0.1)
    assert saturation.thr_vs_peer == pytest.approx(7.5)
    assert saturation.p99_vs_limit is None
    open_500 = ratios(ROWS[9], refs)
    assert open_500.p99_vs_limit == pytest.approx(5.0)
    assert open_500.p99_vs_peer == pytest.approx(0.1)
    assert open_500.thr_vs_peer is None  # an open-loop row's throughput is just the offered load


def test_no_ratio_without_a_reference_at_that_load() -> None:
    open_1000 = ratios(ROWS[10], references(ROWS))
    assert (open_1000.p99_vs_limit, open_1000.p99_vs_peer) == (None, None)


def test_a_reference_case_is_not_divided_by_itself() -> None:
    refs = references(ROWS)
    assert ratios(ROWS[0], refs).thr_vs_limit is None
    assert ratios(ROWS[3], refs).p99_vs_limit is None
    assert ratios(ROWS[5], refs).thr_vs_peer is None
    assert ratios(ROWS[5], refs).thr_vs_limit == pytest.approx(0.01)
    assert ratios(ROWS[2], refs).thr_vs_limit == pytest.approx(0.5)


def test_limit_rows_are_not_divided_by_the_peer() -> None:
    r = ratios(ROWS[2], references(ROWS))
    assert (r.thr_vs_peer, r.p99_vs_peer) == (None, None)


def test_a_load_the_limit_did_not_keep_up_with_is_no_reference() -> None:
    swamped = _row("aiokafka loop", "limit", "open", 1, p99=20_000.0, offered=1_000, reference=True, kept_up=False)
    refs = references([*ROWS, swamped])
    assert 1_000 not in refs.limit_p99
    assert ratios(ROWS[10], refs).p99_vs_limit is None


def test_info_rows_get_no_ratios() -> None:
    info = _row("codec encode", "info", "saturation", throughput=90_000)
    r = ratios(info, references([*ROWS, info]))
    assert (r.thr_vs_limit, r.thr_vs_peer, r.p99_vs_limit, r.p99_vs_peer) == (None, None, None, None)


def test_no_rows_no_references() -> None:
    refs = references([])
    assert (refs.limit_throughput, refs.peer_throughput, refs.limit_p99, refs.peer_p99) == (None, None, {}, {})
