"""Job ids and request hashes, derived the same way wherever a job is submitted.

- With an Idempotency-Key, the job id is `uuid5(JOB_NAMESPACE, "<client>\\n<key>")`: the same
  client retrying with the same key always gets the same job id, on any intake replica and in
  the SDK's publisher. Without one, a fresh uuid4.
- The request hash is SHA-256 over the canonical JSON of the validated request (defaults filled
  in), so later stages can tell a retried request from a different one under the same id.
"""

from __future__ import annotations

import hashlib
import uuid

from jobrelay.jobs.events import JobRequested
from jobrelay.sdk.request import JobSubmission, canonical_json

__all__ = ["ANONYMOUS", "JOB_NAMESPACE", "build_requested", "job_id_for", "request_hash"]

JOB_NAMESPACE = uuid.UUID("6f1c8a52-3b0e-5d7e-9a41-0c2f6e8b9d13")
ANONYMOUS = "anonymous"


def job_id_for(idempotency_key: str | None, client_id: str = ANONYMOUS) -> str:
    """The job id for a submission: derived from (client, key), else random."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(JOB_NAMESPACE, f"{client_id}\n{idempotency_key}"))


def request_hash(submission: JobSubmission) -> str:
    """SHA-256 (hex) of the canonical request: equal for equal requests, whatever their key order."""
    document = submission.model_dump(mode="json")
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def build_requested(
    submission: JobSubmission, *, idempotency_key: str | None = None, client_id: str = ANONYMOUS
) -> JobRequested:
    """The JobRequested event for a validated submission."""
    return JobRequested(
        job_id=job_id_for(idempotency_key, client_id),
        job_type=submission.type,
        payload=submission.payload_json(),
        max_attempts=submission.max_attempts,
        timeout_s=submission.timeout_s,
        expires_at=submission.expires_at,
        callback_url=submission.callback_url,
        idempotency_key=idempotency_key,
        client_id=client_id,
        request_hash=request_hash(submission),
    )
