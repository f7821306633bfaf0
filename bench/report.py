"""The one table (rich), and the same rows as JSON and as a PNG plot under bench/results/."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.ratios import Ratios, ratios, references
from bench.scenario import Measurement
from bench.stats import LatencyStats

__all__ = [
    "build_table",
    "fmt_ratio",
    "markdown_table",
    "read_json",
    "rows_with_ratios",
    "write_json",
    "write_plot",
    "write_text",
]

COLUMNS = (
    "scenario", "case", "run", "load", "thr/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost",
    "thr÷limit", "p99÷limit", "thr÷peer", "p99÷peer", "notes",
)  # fmt: skip


def rows_with_ratios(rows: Sequence[Measurement]) -> list[tuple[Measurement, Ratios]]:
    """Every row with its ratios to the limit and the peer."""
    refs = references(rows)
    return [(row, ratios(row, refs)) for row in rows]


def fmt_ratio(value: float | None) -> str:
    """Three significant digits ('2.5x', '0.0131x', '117x'), or '' where no ratio applies."""
    return "" if value is None else f"{value:.3g}x"


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _load(row: Measurement) -> str:
    if row.mode == "saturation":
        return "saturation"
    if row.mode == "latency":
        return "1 at a time"
    mark = "" if row.kept_up else " ✗"
    return f"{row.offered:,.0f}/s{mark}"


def _cells(row: Measurement, r: Ratios) -> list[str]:
    lat = row.latency
    return [
        row.scenario, row.case, str(row.run), _load(row), _num(row.throughput, 0),
        _num(lat.p50 if lat else None, 2), _num(lat.p95 if lat else None, 2), _num(lat.p99 if lat else None, 2),
        _num(lat.max if lat else None, 1), str(row.lost) if row.lost else "",
        fmt_ratio(r.thr_vs_limit), fmt_ratio(r.p99_vs_limit), fmt_ratio(r.thr_vs_peer), fmt_ratio(r.p99_vs_peer),
        row.notes,
    ]  # fmt: skip


def build_table(rows: Sequence[Measurement], title: str) -> Table:
    """The table: one line per scenario, case, run and offered load."""
    table = Table(title=title, caption="✗ = did not keep up with the offered load (queue growing or p99 > 1 s)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("scenario", "case", "notes") else "right")
    pairs = rows_with_ratios(rows)
    for i, (row, r) in enumerate(pairs):
        last_of_case = i + 1 == len(pairs) or (pairs[i + 1][0].scenario, pairs[i + 1][0].case) != (
            row.scenario,
            row.case,
        )
        table.add_row(*_cells(row, r), end_section=last_of_case)
    return table


def write_json(path: Path, rows: Sequence[Measurement], meta: dict[str, Any]) -> None:
    """Rows, their ratios and the run's metadata as JSON."""
    data = {
        "meta": meta,
        "rows": [dataclasses.asdict(row) | {"ratios": dataclasses.asdict(r)} for row, r in rows_with_ratios(rows)],
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def read_json(path: Path) -> tuple[list[Measurement], dict[str, Any]]:
    """The rows and metadata `write_json` wrote (ratios are recomputed from the rows)."""
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(Measurement)}
    rows = []
    for item in data["rows"]:
        fields = {k: v for k, v in item.items() if k in names}
        latency = fields.pop("latency")
        rows.append(Measurement(**fields, latency=LatencyStats(**latency) if latency else None))
    return rows, data["meta"]


def markdown_table(rows: Sequence[Measurement], title: str) -> str:
    """The same table as GitHub Markdown (the README shows it)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{title}**", "", "| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "|".join(":--" if c in ("scenario", "case", "notes") else "--:" for c in COLUMNS) + "|")
    lines += ["| " + " | ".join(cell(c) for c in _cells(row, r)) + " |" for row, r in rows_with_ratios(rows)]
    lines += ["", "✗ = did not keep up with the offered load (queue growing or p99 > 1 s)"]
    return "\n".join(lines) + "\n"


def write_text(path: Path, table: Table, width: int = 200) -> None:
    """The table as plain text (for the README)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(table)
    path.write_text(buffer.getvalue())


def write_plot(path: Path, rows: Sequence[Measurement], title: str) -> None:
    """Saturation throughput per case and run (left), p50/p99 against offered load (right); no info rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    sat = [r for r in rows if r.mode == "saturation" and r.throughput and r.role != "info"]
    labels = [f"{r.case}\nrun {r.run}" for r in sat]
    left.barh(labels, [r.throughput or 0.0 for r in sat], color=[_colour(r.role) for r in sat])
    left.set_xscale("log")
    left.set_xlabel("throughput at saturation (per second, log)")
    left.invert_yaxis()
    left.tick_params(axis="y", labelsize=7)
    curves: dict[tuple[str, int], list[Measurement]] = {}
    for r in rows:
        if r.mode == "open" and r.latency and r.offered:
            curves.setdefault((r.case, r.run), []).append(r)
    for (case, run), points in sorted(curves.items()):
        points.sort(key=lambda m: m.offered or 0.0)
        xs = [m.offered for m in points]
        line = right.plot(xs, [m.latency.p99 for m in points if m.latency], marker="o", label=f"{case} r{run} p99")
        right.plot(xs, [m.latency.p50 for m in points if m.latency], ls="--", color=line[0].get_color(), alpha=0.6)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("offered load (jobs/s, open loop)")
    right.set_ylabel("latency ms (solid p99, dashed p50)")
    if curves:
        right.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _colour(role: str) -> str:
    return {"limit": "tab:green", "peer": "tab:orange", "subject": "tab:blue"}.get(role, "tab:gray")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.report RESULTS.json`: print the results as the Markdown table."""
    import sys

    path = Path((argv if argv is not None else sys.argv[1:])[0])
    rows, meta = read_json(path)
    title = meta.get("title") or f"jobrelay bench ({meta.get('started_at', '')})"
    print(markdown_table(rows, title), end="")


if __name__ == "__main__":
    main()
