"""Prometheus metrics that the shared messaging code records, and the `/metrics` ASGI app.

Metrics live in the process-wide default registry (one service per process); services define
their own next to the code that records them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, make_asgi_app

__all__ = ["CONSUMED", "CONSUMER_LAG", "DEAD_LETTERED", "PRODUCED", "metrics_app"]

CONSUMED = Counter("jobrelay_consumed_records_total", "Records consumed", ["service", "topic"])
PRODUCED = Counter("jobrelay_produced_records_total", "Records acknowledged by Kafka", ["service", "topic"])
DEAD_LETTERED = Counter("jobrelay_dead_lettered_total", "Records sent to job-dlq", ["service", "reason"])
CONSUMER_LAG = Gauge("jobrelay_consumer_lag", "Records behind the partition's end", ["service", "topic", "partition"])


def metrics_app() -> Any:
    """An ASGI app serving the default registry in the Prometheus text format (mount at /metrics)."""
    return make_asgi_app()
