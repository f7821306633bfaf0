"""Job ids and request hashes, derived the same way wherever a job is submitted.

- With an Idempotency-Key, the job id is derived from (tenant, key): keyed with a server-side
  secret (HMAC-SHA256, `id_secret`, shared by every intake replica through the key file), so the
  same tenant retrying with the same key always gets the same job id, two tenants never share
  one, and nobody without the secret can compute an id. Without a secret (the SDK's publisher
  unless given one) it is `uuid5(JOB_NAMESPACE, "<client>\\n<key>")`, as before. Without a key, a
  fresh uuid4.
- The request hash is SHA-256 over the canonical JSON of the validated request (defaults filled
  in), so later stages can tell a retried request from a different one under the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from jobrelay.jobs.events import JobRequested
from jobrelay.sdk.request import JobSubmission, canonical_json

__all__ = ["ANONYMOUS", "JOB_NAMESPACE", "build_requested", "job_id_for", "request_hash"]

JOB_NAMESPACE = uuid.UUID("6f1c8a52-3b0e-5d7e-9a41-0c2f6e8b9d13")
ANONYMOUS = "anonymous"


def job_id_for(idempotency_key: str | None, client_id: str = ANONYMOUS, *, secret: str | None = None) -> str:
    """The job id: derived from (client or tenant, key), keyed by `secret` when given; else random."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    text = f"{client_id}\n{idempotency_key}"
    if not secret:
        return str(uuid.uuid5(JOB_NAMESPACE, text))
    digest = bytearray(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # RFC 9562 version 8 (custom), variant 10
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def request_hash(submission: JobSubmission) -> str:
    """SHA-256 (hex) of the canonical request: equal for equal requests, whatever their key order."""
    document = submission.model_dump(mode="json")
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def build_requested(
    submission: JobSubmission,
    *,
    idempotency_key: str | None = None,
    client_id: str = ANONYMOUS,
    tenant: str | None = None,
    id_secret: str | None = None,
) -> JobRequested:
    """The JobRequested event for a validated submission (ids per tenant when one is given)."""
    return JobRequested(
        job_id=job_id_for(idempotency_key, tenant if tenant is not None else client_id, secret=id_secret),
        tenant=tenant,
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
