"""`python -m bench`: run the scenarios, print one table, write JSON, text and a PNG plot.

Usage: `python -m bench [--quick] [--runs N] [--only NAME ...] [--out DIR]` with a broker on
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092; `jobrelay dev kafka up` starts one). The
peer needs the `bench` extra (`pip install -e '.[dev,bench]'`) and `redis-server` on PATH.
Exit status: 0 all ran, 1 a scenario failed, 2 one was skipped for a missing prerequisite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console

from bench.report import build_table, markdown_table, write_json, write_plot, write_text
from bench.runner import machine_meta, ordered, run_all
from bench.scenario import BenchContext, Plan
from bench.scenarios import NAMES, load
from jobrelay.config.settings import KafkaSettings

__all__ = ["main"]

RESULTS = Path(__file__).with_name("results")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, short durations (development)")
    parser.add_argument("--runs", type=int, default=2, choices=range(2, 6), help="runs per scenario (default 2)")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help=f"among: {', '.join(NAMES)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go (default bench/results)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, print, write; return the exit status."""
    args = _args(argv)
    console = Console(width=max(Console().width, 180))
    plan = Plan.quick() if args.quick else Plan()
    ctx = BenchContext(
        kafka=KafkaSettings(),
        prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        plan=plan,
        quick=args.quick,
        runs=args.runs,
        log=lambda line: console.log(line),
    )
    meta = machine_meta() | {"quick": args.quick, "runs": args.runs, "plan": plan.__repr__()}
    started = time.monotonic()
    outcome = asyncio.run(run_all(load(args.only), ctx, budget_s=240 if args.quick else 900))
    meta |= {"duration_s": round(time.monotonic() - started, 1), "load_average_at_end": os.getloadavg()}
    meta |= {"skipped": outcome.skipped, "failed": outcome.failed}
    rows = ordered(outcome.rows)
    mode = "quick" if args.quick else "full"
    title = (
        f"jobrelay bench ({mode}, {args.runs} runs, {meta['cpus']} CPUs, load {meta['load_average_at_start'][0]:.1f}"
        f" at start, {meta['started_at']}, {meta['duration_s']:.0f} s)"
    )
    meta["title"] = title
    table = build_table(rows, title)
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("quick" if args.quick else "latest")
    write_json(stem.with_suffix(".json"), rows, meta)
    write_text(stem.with_suffix(".txt"), table)
    stem.with_suffix(".md").write_text(markdown_table(rows, title))
    if rows:
        write_plot(stem.with_suffix(".png"), rows, title)
    console.print(f"wrote {stem}.json, .txt, .md and .png")
    for line in outcome.skipped + outcome.failed:
        console.print(f"[bold red]{line}")
    return 1 if outcome.failed else 2 if outcome.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
