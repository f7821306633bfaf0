"""The processor's Prometheus metrics (process-wide default registry, served at /metrics)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "child",
    "CANCELS",
    "DUPLICATES",
    "JOBS_CANCELLED",
    "JOBS_EXPIRED",
    "JOBS_FAILED",
    "JOBS_RETRIED",
    "JOBS_STARTED",
    "JOBS_SUCCEEDED",
    "JOB_DURATION",
    "IN_FLIGHT",
    "PAUSED_PARTITIONS",
    "TRANSACTIONS",
    "TRANSACTION_SECONDS",
]

JOBS_STARTED = Counter("jobrelay_processor_jobs_started_total", "Job attempts started", ["job_type"])
JOBS_SUCCEEDED = Counter("jobrelay_processor_jobs_succeeded_total", "Jobs that succeeded", ["job_type"])
JOBS_FAILED = Counter("jobrelay_processor_jobs_failed_total", "Jobs that failed for good", ["job_type", "code"])
JOBS_RETRIED = Counter("jobrelay_processor_jobs_retried_total", "Retries scheduled", ["job_type"])
JOBS_EXPIRED = Counter("jobrelay_processor_jobs_expired_total", "Jobs not run because they expired", ["job_type"])
JOBS_CANCELLED = Counter("jobrelay_processor_jobs_cancelled_total", "Jobs ended CANCELLED", ["job_type"])
CANCELS = Counter(
    "jobrelay_processor_cancel_requests_total", "Cancel requests read", ["outcome"]
)  # outcome: taken (the job was queued, waiting or running here) or too_late (over, or not here)
DUPLICATES = Counter(
    "jobrelay_processor_duplicate_requests_total", "Repeated requests for a known job", ["outcome"]
)  # outcome: ignored (same request) or conflict (different request, dead-lettered)
JOB_DURATION = Histogram(
    "jobrelay_processor_attempt_duration_seconds",
    "Time a handler ran, per attempt",
    ["job_type", "outcome"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
IN_FLIGHT = Gauge("jobrelay_processor_jobs_in_flight", "Handlers running now")
PAUSED_PARTITIONS = Gauge("jobrelay_processor_paused_partitions", "Partitions paused because they are full")
TRANSACTIONS = Counter("jobrelay_processor_transactions_total", "Kafka transactions", ["outcome"])
TRANSACTION_SECONDS = Histogram(
    "jobrelay_processor_transaction_seconds",
    "Time to write and commit one transaction",
    buckets=(0.005, 0.02, 0.1, 0.5, 2),
)


M = TypeVar("M", bound=MetricWrapperBase)


@lru_cache(maxsize=4096)
def _child(metric: Any, labels: tuple[str, ...]) -> Any:
    return metric.labels(*labels)


def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, looked up once per label set (the per-job hot path calls it often)."""
    found: M = _child(metric, labels)
    return found
