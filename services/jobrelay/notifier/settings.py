"""The notifier's settings (environment prefix `JOBRELAY_NOTIFIER_`), built once in `main.py`.

Signing secrets are `whsec_…` strings (Standard Webhooks): several at once sign every delivery
with each of them, so a receiver can rotate its secret without missing a delivery. They are
`SecretStr` and never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobrelay.config.settings import LOCAL_POSTGRES_DSN
from jobrelay.security.urls import UrlPolicy

__all__ = ["DEFAULT_RETRY_SCHEDULE", "NotifierSettings", "Subscription", "split_list", "validate_secret"]

# The Standard Webhooks recommendation: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (then give up).
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)


def _replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def split_list(value: object) -> object:
    """A JSON list as is; other text split on commas and spaces (`5,300,1800`)."""
    if not isinstance(value, str):
        return value
    return json.loads(value) if value.lstrip().startswith("[") else value.replace(",", " ").split()


def validate_secret(secret: SecretStr) -> SecretStr:
    """Accept only `whsec_<base64>` secrets of 24 to 64 bytes, as the standard recommends."""
    text = secret.get_secret_value()
    if not text.startswith("whsec_"):
        raise ValueError("a signing secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing secret must be base64 after whsec_") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a signing secret must hold 24 to 64 bytes, not {len(key)}")
    return secret


class Subscription(BaseModel):
    """An endpoint that receives every completion of the given job types ("*": all of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="", description="Stable name; deliveries refer to it. Defaults to the URL.")
    url: str
    job_types: tuple[str, ...] = Field(min_length=1)
    secrets: tuple[SecretStr, ...] = Field(default=(), description="Own secrets; empty means the default ones.")

    @field_validator("secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        return tuple(validate_secret(s) for s in value)

    @property
    def key(self) -> str:
        """What a delivery row stores to find this subscription's secrets again."""
        return self.name or self.url

    def matches(self, job_type: str) -> bool:
        """Whether completions of `job_type` go to this endpoint."""
        return "*" in self.job_types or job_type in self.job_types


class NotifierSettings(BaseSettings):
    """Everything the notifier needs besides Kafka and topics (which have their own prefixes)."""

    model_config = SettingsConfigDict(
        env_prefix="JOBRELAY_NOTIFIER_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Address of the health/metrics endpoint.")
    port: int = Field(default=8002, ge=0, le=65535, description="Port of the health/metrics endpoint.")
    group_id: str = Field(default="jobrelay-notifier", description="Kafka consumer group.")
    store: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        validation_alias=AliasChoices("JOBRELAY_NOTIFIER_STORE", "JOBRELAY_STORE"),
        description="sqlite (database) or postgres (postgres_dsn); JOBRELAY_STORE sets both services'.",
    )
    database: Path = Field(default=Path("jobrelay-notifier.sqlite3"), description="SQLite delivery state.")
    postgres_dsn: str = Field(
        default=LOCAL_POSTGRES_DSN,
        repr=False,
        validation_alias=AliasChoices("JOBRELAY_NOTIFIER_POSTGRES_DSN", "JOBRELAY_POSTGRES_DSN"),
        description="PostgreSQL URL of the delivery state; JOBRELAY_POSTGRES_DSN sets both services'.",
    )
    status_base_url: str = Field(default="http://127.0.0.1:8001", description="Base of the links in bodies.")
    result_retention_s: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="How long the status view keeps a finished job (`retain_until` in bodies): keep it equal to "
        "JOBRELAY_PROJECTOR_RETENTION_S.",
    )
    signing_secrets: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="whsec_ secrets for callback URLs."
    )
    subscriptions: tuple[Subscription, ...] = Field(
        default=(), description="JSON list of {name,url,job_types,secrets}."
    )
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_RETRY_SCHEDULE, description="Seconds between attempts."
    )
    jitter: float = Field(default=0.1, ge=0.0, le=1.0, description="Each delay is scaled by 1 ± jitter.")
    max_retry_after: float = Field(default=36000.0, ge=0.0, description="Cap on a receiver's Retry-After.")
    request_timeout: float = Field(default=15.0, gt=0.0, description="Seconds per HTTP attempt.")
    max_concurrency: int = Field(default=32, ge=1, description="Attempts in flight at once.")
    per_host_concurrency: int = Field(default=4, ge=1, description="Attempts in flight per host:port.")
    allow_http: bool = Field(default=False, description="Allow http:// endpoints (https only by default).")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Host names exempt from the address check."
    )
    allowed_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="CIDRs exempt from the address check."
    )
    user_agent: str = Field(default="jobrelay-notifier/0.1", description="User-Agent of every webhook request.")
    shutdown_grace: float = Field(default=10.0, ge=0.0, description="Seconds in-flight attempts get on SIGTERM.")
    replica_id: str = Field(
        default_factory=_replica_id, description="Names this process in the claims of a shared (PostgreSQL) state."
    )
    claim_lease_s: float = Field(
        default=60.0,
        gt=0.0,
        description="postgres: how long a claimed delivery is this replica's alone; then another may take it over "
        "(must exceed request_timeout).",
    )

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotifierSettings:
        if self.claim_lease_s <= self.request_timeout:
            raise ValueError("claim_lease_s must exceed request_timeout, or a running attempt could be taken over")
        return self

    @field_validator("signing_secrets", "retry_schedule", "allowed_hosts", "allowed_networks", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        # Lists in one env var: JSON, or comma-separated (several secrets at once = rotation).
        return split_list(value)

    @field_validator("signing_secrets")
    @classmethod
    def _whsec(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        return tuple(validate_secret(s) for s in value)

    @field_validator("retry_schedule")
    @classmethod
    def _non_negative(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must not be negative")
        return value

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per scheduled retry."""
        return 1 + len(self.retry_schedule)

    def url_policy(self) -> UrlPolicy:
        """The SSRF policy every delivery is checked against."""
        return UrlPolicy.from_lists(
            allow_http=self.allow_http, hosts=self.allowed_hosts, networks=self.allowed_networks
        )

    def secrets_for(self, subscription: str | None) -> tuple[str, ...] | None:
        """The secrets signing a delivery (a callback when `subscription` is None); None: no such subscription."""
        chosen: tuple[SecretStr, ...] = ()
        if subscription is not None:
            found = next((s for s in self.subscriptions if s.key == subscription), None)
            if found is None:
                return None
            chosen = found.secrets
        return tuple(s.get_secret_value() for s in chosen or self.signing_secrets)
