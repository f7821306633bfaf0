"""CloudEvents Kafka binding (binary mode) headers, plus W3C trace context, for every record."""

from __future__ import annotations

from collections.abc import Sequence

from jobrelay.jobs.events import Event, JobCancelRequested, JobCompleted, JobDeadLettered, JobProgress, JobRequested
from jobrelay.observability.tracing import KafkaHeaders, inject_context

__all__ = ["CE_TYPES", "CONTENT_TYPE", "event_headers", "header"]

CONTENT_TYPE = "application/avro"
CE_TYPES: dict[type[Event], str] = {
    JobRequested: "jobrelay.job.requested.v1",
    JobProgress: "jobrelay.job.progress.v1",
    JobCompleted: "jobrelay.job.completed.v1",
    JobDeadLettered: "jobrelay.job.dead_lettered.v1",
    JobCancelRequested: "jobrelay.job.cancel_requested.v1",
}


def event_headers(event: Event, source: str, trace: KafkaHeaders | None = None) -> KafkaHeaders:
    """`ce_*` headers describing `event`, `content-type`, and the current trace context.

    `trace`: trace headers taken earlier in the same context (`inject_context` on an empty list),
    for a caller that writes several events from one span.
    """
    headers: KafkaHeaders = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", CE_TYPES[type(event)].encode()),
        ("ce_time", event.occurred_at.isoformat().replace("+00:00", "Z").encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if event.job_id:
        headers.append(("ce_subject", event.job_id.encode()))
    if trace is None:
        inject_context(headers)
    else:
        headers.extend(trace)
    return headers


def header(headers: Sequence[tuple[str, bytes | None]], key: str) -> str | None:
    """The first value of header `key` as text, or None."""
    for name, value in headers:
        if name == key and value is not None:
            return value.decode(errors="replace")
    return None
