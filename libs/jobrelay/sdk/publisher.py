"""`JobPublisher`: submit jobs by publishing JobRequested straight to Kafka, as the intake does.

For upstream services that already talk to Kafka. The request goes through the same validation
(`validate_submission`, callback URL check included), the same job-id and request-hash
derivation and the same Avro schema and headers as `POST /v1/jobs`. There is no idempotency
store here: publishing twice with the same key writes two records with the same job id and
request hash, and the processor runs the job once (it ignores the second).

`tenant` names whose jobs these are (the status view shows them to that tenant only), and ids
derived from an Idempotency-Key are keyed with the deployment's id secret, read from the shared
key file (`JOBRELAY_AUTH_KEYS_FILE`) when it is there — so the publisher and the intake give a
tenant's key the same job id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobrelay.config.settings import AuthSettings, KafkaSettings, TopicSettings
from jobrelay.messaging.acked import AckedProducer
from jobrelay.messaging.clients import make_codec
from jobrelay.messaging.confluent import producer_config
from jobrelay.sdk.identity import ANONYMOUS, build_requested
from jobrelay.sdk.request import RequestLimits
from jobrelay.sdk.validation import validate_submission
from jobrelay.security.keys import KeyFile

__all__ = ["JobPublisher", "Published"]


@dataclass(frozen=True, slots=True)
class Published:
    """A job on job-requested: its id, request hash and where the record landed."""

    id: str
    request_hash: str
    partition: int
    offset: int


class JobPublisher:
    """Validates job requests and publishes them, waiting for Kafka's acknowledgement (acks=all)."""

    def __init__(
        self,
        producer: AckedProducer,
        *,
        limits: RequestLimits | None = None,
        client_id: str = ANONYMOUS,
        tenant: str | None = None,
        id_secret: str | None = None,
    ) -> None:
        self.producer, self.limits, self.client_id = producer, limits or RequestLimits(), client_id
        self.tenant = tenant
        self.id_secret = id_secret if id_secret is not None else KeyFile(AuthSettings().keys_file).read().id_secret

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        *,
        limits: RequestLimits | None = None,
        client_id: str = ANONYMOUS,
        tenant: str | None = None,
        id_secret: str | None = None,
    ) -> AsyncIterator[JobPublisher]:
        """A publisher with its own idempotent producer, flushed and closed on exit."""
        kafka = kafka or KafkaSettings()
        # librdkafka (idempotent, acks=all, murmur2 partitioning like every other producer of ours)
        config = producer_config(kafka, "sdk-publisher", **{"message.timeout.ms": 2 * kafka.request_timeout_ms})
        producer = AckedProducer(config, make_codec(kafka), topics or TopicSettings(), "/jobrelay/sdk")
        try:
            yield cls(producer, limits=limits, client_id=client_id, tenant=tenant, id_secret=id_secret)
        finally:
            await producer.close(kafka.request_timeout_ms / 1000)

    async def publish(
        self,
        job_type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout_s: float | None = None,
        expires_at: datetime | None = None,
        max_attempts: int | None = None,
    ) -> Published:
        """Validate and publish one job; raises InvalidJobRequest (nothing published) on bad input."""
        body: dict[str, Any] = {"type": job_type, "payload": payload}
        options = {
            "callback_url": callback_url,
            "timeout_s": timeout_s,
            "expires_at": expires_at,
            "max_attempts": max_attempts,
        }
        body |= {name: value for name, value in options.items() if value is not None}
        submission = await validate_submission(body, self.limits, prefix="request")
        event = build_requested(
            submission,
            idempotency_key=idempotency_key,
            client_id=self.client_id,
            tenant=self.tenant,
            id_secret=self.id_secret or None,
        )
        partition, offset = await self.producer.publish(event)
        return Published(event.job_id, event.request_hash, partition, offset)
