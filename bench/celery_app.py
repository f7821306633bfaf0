"""The Celery app of the peer benchmark: Redis as broker and result backend, one no-op task.

The worker the bench starts imports this module (`celery -A bench.celery_app worker`) and reads
the Redis URL from BENCH_CELERY_REDIS_URL; the bench's client builds the same app with
`make_app(url)` and sends by task name.
"""

from __future__ import annotations

import os

from celery import Celery

__all__ = ["NOOP", "QUEUE", "app", "make_app"]

NOOP = "bench.noop"
QUEUE = "bench"


def make_app(url: str) -> Celery:
    """Celery 5 with Redis for messages and results, JSON, and otherwise its defaults."""
    celery = Celery("bench", broker=url, backend=url)
    celery.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    celery.task(name=NOOP)(_noop)
    return celery


def _noop(n: int) -> int:
    """The job: nothing, as jobrelay's no-op handler."""
    return n


app = make_app(os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/0"))
