"""Deliveries that ended without success become JobDeadLettered records on job-dlq.

They carry the JobCompleted record (bytes, headers, coordinates) so an operator can replay it,
the endpoint's last status and error, and the attempts made. The projector keeps them as
information: a job's outcome never changes because its webhook could not be delivered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from jobrelay.jobs.events import DeadLetterReason, JobDeadLettered, RecordHeader
from jobrelay.notifier.store import Delivery

__all__ = ["STAGE", "dead_letter", "redacted"]

STAGE = "notifier"


def redacted(url: str) -> str:
    """The URL without its query and fragment, which may hold a receiver's tokens."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def dead_letter(delivery: Delivery) -> JobDeadLettered:
    """The JobDeadLettered for a delivery in a final failed state."""
    completion = delivery.completion
    message = f"webhook to {redacted(delivery.url)} {delivery.state.value}: {delivery.last_error or 'no detail'}"
    return JobDeadLettered(
        stage=STAGE,
        reason=DeadLetterReason.WEBHOOK_UNDELIVERABLE,
        source_topic=completion.topic,
        source_partition=completion.partition,
        source_offset=completion.offset,
        job_id=completion.job_id,
        job_type=completion.job_type,
        error_message=message[:4000],
        attempts=delivery.attempts,
        last_status=delivery.last_status,
        original_key=completion.key,
        original_value=completion.value,
        original_headers=tuple(RecordHeader(k, v) for k, v in completion.headers),
    )
