"""Celery as the load generator sees it: a worker process, and a client that submits and observes.

Submit is `send_task` (what `delay()` does). Completions are observed the way Celery's own
`get()` waits on a Redis result backend: the client's result consumer (pub/sub on each task's
result key) is drained by one thread, and its `on_message` hook marks each ready task complete.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from bench.loadgen import CompletionLog, Target
from bench.procs import started

__all__ = ["WORKER_CONCURRENCY", "celery_client", "celery_worker"]

# One prefork child per core: the no-op task is CPU-bound Python, so more children only add
# context switches on this 2-core machine (which also runs Redis, Kafka and the client).
WORKER_CONCURRENCY = os.cpu_count() or 2
ROOT = Path(__file__).resolve().parents[1]  # so the worker can import bench.celery_app


@contextmanager
def celery_worker(url: str, workdir: Path) -> Iterator[int]:
    """Start a Celery worker (prefork, WORKER_CONCURRENCY children) on `url`; yield its PID; stop it."""
    cmd = [
        sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "--pool=prefork",
        f"--concurrency={WORKER_CONCURRENCY}", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel=WARNING", f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"BENCH_CELERY_REDIS_URL": url, "PYTHONPATH": path}
    with started(cmd, workdir / "celery-worker.log", env=env) as proc:
        yield proc.pid


def _drain(consumer: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        consumer.drain_events(timeout=0.05)


def wait_ready(app: Any, timeout: float) -> None:
    """Return once the worker answers a no-op; raise TimeoutError after `timeout` seconds."""
    from bench.celery_app import NOOP

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            app.send_task(NOOP, args=(0,)).get(timeout=2)
            return
        except Exception:  # noqa: BLE001, S112 - not up yet: any error means try again
            continue
    raise TimeoutError(f"the Celery worker did not answer within {timeout:.0f} s")


@asynccontextmanager
async def celery_client(url: str) -> AsyncIterator[Target]:
    """A client app on `url` whose completions are observed by a draining thread."""
    from celery import states

    from bench.celery_app import NOOP, make_app

    app = make_app(url)
    wait_ready(app, timeout=60)
    log, stop = CompletionLog(), threading.Event()
    consumer = app.backend.result_consumer

    def on_message(meta: dict[str, Any]) -> None:
        if meta["status"] in states.READY_STATES:
            log.complete(meta["task_id"])

    consumer.on_message = on_message
    thread = threading.Thread(target=_drain, args=(consumer, stop), name="bench-celery-results", daemon=True)
    thread.start()

    # An AsyncResult that is garbage-collected unsubscribes from its result: keep each one
    # alive until its task is seen ready, as a caller waiting on it would.
    waiting: dict[str, Any] = {}

    async def submit(index: int) -> str:
        result = app.send_task(NOOP, args=(index,))
        waiting[result.id] = result
        return str(result.id)

    try:
        yield Target(submit, log)
    finally:
        stop.set()
        thread.join(5)
        waiting.clear()
        app.close()
