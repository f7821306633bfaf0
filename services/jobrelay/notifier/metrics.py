"""The notifier's Prometheus metrics (served on /metrics with the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["ATTEMPTS", "ATTEMPT_SECONDS", "DELIVERIES", "IN_FLIGHT", "RECORDED"]

RECORDED = Counter("jobrelay_webhook_deliveries_recorded_total", "New deliveries recorded from job-completed")
DELIVERIES = Counter("jobrelay_webhook_deliveries_total", "Deliveries that reached a final state", ["outcome"])
ATTEMPTS = Counter(
    "jobrelay_webhook_attempts_total", "HTTP attempts by result (2xx, 4xx, 5xx, 410, timeout, error)", ["result"]
)
ATTEMPT_SECONDS = Histogram(
    "jobrelay_webhook_attempt_duration_seconds",
    "Duration of one HTTP attempt",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("jobrelay_webhook_in_flight", "HTTP attempts in flight")
