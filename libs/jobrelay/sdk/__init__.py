"""The jobrelay SDK: submit jobs over HTTP (`JobClient`, `AsyncJobClient`) or straight to Kafka
(`JobPublisher`), with the request model and id derivation the intake uses; consume their outcomes
downstream (`Subscriber`).
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
from jobrelay.sdk.subscriber import Delivered, EventFilter, Handler, Poison, PoisonCallback, Subscriber
from jobrelay.sdk.validation import validate_submission

__all__ = [
    "AsyncJobClient",
    "JobClient",
    "JobPublisher",
    "Published",
    "Subscriber",
    "Delivered",
    "EventFilter",
    "Handler",
    "Poison",
    "PoisonCallback",
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
