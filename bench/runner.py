"""Run the selected scenarios, each `runs` times, under a time budget; collect every row."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.scenario import BenchContext, Measurement, Scenario

__all__ = ["Outcome", "machine_meta", "ordered", "run_all"]


@dataclass
class Outcome:
    """Every row, and what was skipped (missing prerequisites) or failed."""

    rows: list[Measurement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def _run_one(scenario: Scenario, ctx: BenchContext, outcome: Outcome) -> None:
    async with scenario.open(ctx) as run_once:
        for run in range(1, ctx.runs + 1):
            outcome.rows += await run_once(run)


async def run_all(scenarios: Sequence[Scenario], ctx: BenchContext, budget_s: float) -> Outcome:
    """Run each scenario (at most `budget_s` seconds each); a failure is recorded, not fatal."""
    outcome = Outcome()
    for scenario in scenarios:
        why = scenario.missing()
        if why is not None:
            ctx.log(f"SKIPPED {scenario.name}: {why}")
            outcome.skipped.append(f"{scenario.name}: {why}")
            continue
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget_s):
                await _run_one(scenario, ctx, outcome)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next scenario
            message = f"{scenario.name}: {type(exc).__name__}: {exc}"
            ctx.log(f"FAILED {message}")
            outcome.failed.append(message)
        ctx.log(f"{scenario.name} took {time.monotonic() - started:.0f} s")
    return outcome


def ordered(rows: Sequence[Measurement]) -> list[Measurement]:
    """Rows grouped by case (in first-seen order), then by run, keeping each run's load order."""
    first_seen: dict[tuple[str, str], int] = {}
    for row in rows:
        first_seen.setdefault((row.scenario, row.case), len(first_seen))
    indexed = list(enumerate(rows))
    indexed.sort(key=lambda item: (first_seen[(item[1].scenario, item[1].case)], item[1].run, item[0]))
    return [row for _, row in indexed]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)  # noqa: S607
    except OSError:
        return None
    return done.stdout.strip() or None


def machine_meta() -> dict[str, Any]:
    """Where and when: enough to know which numbers may be compared."""
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "commit": _git_commit(),
    }
