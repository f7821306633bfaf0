"""The intake's settings (environment prefix `JOBRELAY_INTAKE_`); Kafka, topics and logging
come from the shared settings classes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobrelay.sdk.request import RequestLimits
from jobrelay.security.urls import UrlPolicy

__all__ = ["IntakeSettings"]

CsvList = Annotated[tuple[str, ...], NoDecode]


class IntakeSettings(BaseSettings):
    """How the intake listens, what it accepts, and how long it waits for Kafka."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_INTAKE_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port).")
    status_base_url: str = Field(default="http://127.0.0.1:8001", description="Where the status view answers.")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body (413 beyond).")
    max_payload_bytes: int = Field(default=256 * 1024, ge=2, description="Largest payload, as compact JSON (413).")
    allowed_types: CsvList = Field(default=(), description="Comma-separated job type globs; empty allows any.")
    max_timeout_s: float = Field(default=86_400.0, gt=0, description="Largest timeout_s a request may ask for.")
    submits_per_s: float = Field(
        default=1000, ge=0, description="Submissions per second per tenant (0: no limit); 429 past it."
    )
    submits_burst: float = Field(
        default=2000, ge=1, description="Submissions a tenant may make at once above its rate."
    )
    max_backlog: int = Field(
        default=100_000,
        ge=0,
        description="Records the processors may be behind on job-requested before POST answers 503 (0: off).",
    )
    processor_group_id: str = Field(
        default="jobrelay-processor", description="The processors' consumer group, whose backlog is watched."
    )
    backlog_interval_s: float = Field(default=1.0, gt=0, description="How often the backlog is measured.")
    backlog_hint_records: int = Field(
        default=100,
        ge=1,
        description="From this backlog on, the 202's Retry-After is the backlog's drain time (fewer: poll_after_s).",
    )
    default_expires_in_s: float = Field(
        default=86_400.0,
        ge=0,
        description="A job that sets no expires_at expires this long after it was accepted (0: never).",
    )
    max_attempts: int = Field(default=20, ge=1, description="Largest max_attempts a request may ask for.")
    max_expires_in_s: float = Field(default=30 * 86_400.0, gt=0, description="How far ahead expires_at may be.")
    callback_allow_http: bool = Field(default=False, description="Accept http:// callback URLs (not only https).")
    callback_allowed_hosts: CsvList = Field(default=(), description="Host names exempt from the SSRF check.")
    callback_allowed_networks: CsvList = Field(default=(), description="Networks exempt from it, e.g. 10.1.0.0/16.")
    client_id_header: str = Field(default="X-Client-Id", description="Header naming the client (set by a gateway).")
    idempotency_db: Path = Field(default=Path("intake-idempotency.sqlite3"), description="SQLite file of keys.")
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0, description="How long a key is remembered.")
    publish_timeout_s: float = Field(default=5.0, gt=0, description="Wait this long for Kafka's ack, then 503.")
    poll_after_s: int = Field(default=1, ge=0, description="Retry-After of a 202: when to first poll the status.")
    max_wait_s: int = Field(
        default=30,
        ge=0,
        description="Longest `Prefer: wait=N` a POST may wait for the job's outcome (0: never; job-completed unread).",
    )
    wait_recent: int = Field(
        default=10_000,
        ge=0,
        description="Recent outcomes kept (up to 64 MiB) so a replay with Prefer: wait of a finished job answers 200.",
    )
    unavailable_retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503.")
    workers: int = Field(default=1, ge=1, le=64, description="Processes sharing the port (SO_REUSEPORT).")
    grace_s: float = Field(default=30.0, ge=0, description="SIGTERM: how long in-flight requests may finish.")

    @field_validator("allowed_types", "callback_allowed_hosts", "callback_allowed_networks", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def limits(self) -> RequestLimits:
        """The request limits these settings describe."""
        policy = UrlPolicy.from_lists(
            allow_http=self.callback_allow_http,
            hosts=self.callback_allowed_hosts,
            networks=self.callback_allowed_networks,
        )
        return RequestLimits(
            max_payload_bytes=self.max_payload_bytes,
            allowed_types=self.allowed_types,
            max_timeout_s=self.max_timeout_s,
            max_attempts=self.max_attempts,
            max_expires_in=timedelta(seconds=self.max_expires_in_s),
            url_policy=policy,
        )
