"""The table, its order, the JSON file and the parsers of the Kafka tools' output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from bench.kafkatools import ToolError, parse_end_to_end, parse_producer_perf
from bench.report import build_table, fmt_ratio, markdown_table, read_json, write_json
from bench.runner import ordered
from bench.scenario import Measurement, Mode
from bench.scenarios import NAMES, load
from bench.stats import LatencyStats

PERF = """\
100000 records sent, 20000.0 records/sec (3.5 MB/sec), 300.1 ms avg latency, 900.0 ms max latency.
200000 records sent, 28473.804100 records/sec (4.97 MB/sec), 520.00 ms avg latency, 759.00 ms max latency, \
566 ms 50th, 744 ms 95th, 755 ms 99th, 758 ms 99.9th.
"""
E2E = "0\t95.737697\nAvg latency: 4.6561 ms\nPercentiles: 50th = 3, 99th = 17, 99.9th = 95\n"


def test_producer_performance_summary_is_parsed() -> None:
    perf = parse_producer_perf(PERF)
    assert perf.records == 200_000
    assert perf.records_per_s == pytest.approx(28473.8041)
    assert (perf.latency.p50, perf.latency.p95, perf.latency.p99, perf.latency.max) == (566, 744, 755, 759)


def test_end_to_end_latency_summary_is_parsed() -> None:
    e2e = parse_end_to_end(E2E, records=500)
    assert (e2e.latency.count, e2e.latency.p50, e2e.latency.p99, e2e.latency.p95) == (500, 3, 17, None)
    assert e2e.latency.mean == pytest.approx(4.6561)


def test_unreadable_tool_output_names_the_tool() -> None:
    with pytest.raises(ToolError, match="ProducerPerformance"):
        parse_producer_perf("Exception in thread main")
    with pytest.raises(ToolError, match="EndToEndLatency"):
        parse_end_to_end("", records=1)


def _m(scenario: str, case: str, run: int, offered: float | None = None) -> Measurement:
    mode: Mode = "open" if offered else "saturation"
    latency = LatencyStats(10, 1.0, 2.0, 3.0, 4.0) if offered else None
    return Measurement(scenario, case, "limit", mode, run, 100.0, latency, offered=offered)


ROWS = [_m("limit", "a", 1), _m("limit", "a", 1, 200), _m("limit", "b", 1), _m("limit", "a", 2), _m("peer", "c", 1)]


def test_rows_are_grouped_by_case_then_run() -> None:
    assert [(r.case, r.run, r.offered) for r in ordered(ROWS)] == [
        ("a", 1, None),
        ("a", 1, 200),
        ("a", 2, None),
        ("b", 1, None),
        ("c", 1, None),
    ]


def test_the_table_has_a_line_per_row_with_its_load() -> None:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(build_table(ordered(ROWS), "t"))
    text = out.getvalue()
    assert text.count("│ limit") == 4
    assert "200/s ✗" in text  # kept_up unknown (None) is shown as not kept up
    assert "saturation" in text


def test_ratios_print_with_three_significant_digits_or_nothing() -> None:
    assert [fmt_ratio(v) for v in (2.5, 0.013125, 116.7, None)] == ["2.5x", "0.0131x", "117x", ""]


def test_json_has_meta_rows_and_ratios(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json(path, ROWS, {"quick": True})
    data = json.loads(path.read_text())
    assert data["meta"] == {"quick": True}
    assert len(data["rows"]) == len(ROWS)
    assert data["rows"][1]["latency"]["p99"] == 3.0
    assert set(data["rows"][0]["ratios"]) == {"thr_vs_limit", "p99_vs_limit", "thr_vs_peer", "p99_vs_peer"}


def test_the_json_reads_back_into_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json(path, ROWS, {"title": "t"})
    rows, meta = read_json(path)
    assert rows == list(ROWS) and meta == {"title": "t"}


def test_the_markdown_table_has_a_header_and_a_line_per_row() -> None:
    text = markdown_table(ROWS, "bench")
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| scenario | case | run | load | thr/s |")
    assert len(lines) == 2 + len(ROWS)
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:]), "one cell per column"


def test_the_registry_loads_scenarios_without_celery() -> None:
    assert NAMES[0] == "limit" and "peer" in NAMES
    assert [s.name for s in load(["peer", "limit"])] == ["limit", "peer"]  # registry order
    with pytest.raises(KeyError, match="unknown scenario"):
        load(["nope"])
