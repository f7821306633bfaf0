"""Scenario "peer": Celery 5 on Redis (broker and result backend), the same no-op job and loads.

The bench starts its own redis-server (127.0.0.1, a free port, no persistence) and a Celery
worker, measures with the same load generator as every other system, and stops both by PID.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from bench.ladder import Labels, climb
from bench.redisproc import redis_missing, redis_server
from bench.scenario import BenchContext, Measurement, RunOnce

__all__ = ["SCENARIO", "PeerScenario"]

NAME = "peer"
# How the peer is driven, beside jobrelay's HTTP rows (driven by the compiled httpgen): through
# Celery's own Python client, which is how Celery is used.
DRIVEN = "driven by Celery's Python client (send_task) in the bench process"


class PeerScenario:
    """Celery with Redis: saturation, then the open-loop offered loads."""

    name = NAME

    def missing(self) -> str | None:
        """The `bench` extra (Celery) and Debian's redis-server."""
        if importlib.util.find_spec("celery") is None:
            return "Celery is not installed: .venv/bin/pip install -e '.[dev,bench]'"
        return redis_missing()

    @asynccontextmanager
    async def open(self, ctx: BenchContext) -> AsyncIterator[RunOnce]:
        """Start Redis and a worker once for all runs; stop both on exit."""
        from bench.celerypeer import WORKER_CONCURRENCY, celery_client, celery_worker

        with tempfile.TemporaryDirectory(prefix="jobrelay-bench-") as tmp:
            workdir = Path(tmp)
            with redis_server(workdir) as url, celery_worker(url, workdir) as pid:
                ctx.log(f"peer: redis on {url}, celery worker pid {pid} (prefork, concurrency {WORKER_CONCURRENCY})")
                labels = Labels(NAME, f"celery+redis prefork c={WORKER_CONCURRENCY}", "peer")

                async def run_once(run: int) -> list[Measurement]:
                    ctx.log(f"peer run {run}: celery")
                    async with celery_client(url) as target:
                        rows = await climb(target, labels, run, ctx.plan)
                    return [replace(row, notes=f"{row.notes}; {DRIVEN}") for row in rows]

                yield run_once


SCENARIO = PeerScenario()
