"""The jobrelay SDK: submit, wait for and follow jobs over HTTP (`JobClient`, `AsyncJobClient`) or
submit straight to Kafka (`JobPublisher`), with the request model and id derivation the intake uses.
"""

from jobrelay.sdk.client import AsyncJobClient, JobClient
from jobrelay.sdk.errors import (
    FieldError,
    InvalidJobRequest,
    JobConflict,
    JobNotFound,
    JobRelayError,
    ProblemError,
    RateLimited,
    ServiceUnavailable,
    StreamLost,
    TransientError,
    WaitTimeout,
)
from jobrelay.sdk.identity import ANONYMOUS, build_requested, job_id_for, request_hash
from jobrelay.sdk.publisher import JobPublisher, Published
from jobrelay.sdk.request import JobSubmission, RequestLimits, canonical_json
from jobrelay.sdk.retrying import RetryPolicy
from jobrelay.sdk.status import TERMINAL, Accepted, JobView
from jobrelay.sdk.validation import validate_submission

__all__ = [
    "AsyncJobClient",
    "JobClient",
    "JobPublisher",
    "Published",
    "RetryPolicy",
    "Accepted",
    "JobView",
    "TERMINAL",
    "JobSubmission",
    "RequestLimits",
    "validate_submission",
    "build_requested",
    "job_id_for",
    "request_hash",
    "canonical_json",
    "ANONYMOUS",
    "FieldError",
    "InvalidJobRequest",
    "JobConflict",
    "JobNotFound",
    "JobRelayError",
    "ProblemError",
    "RateLimited",
    "ServiceUnavailable",
    "StreamLost",
    "TransientError",
    "WaitTimeout",
]
