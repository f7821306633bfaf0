"""Settings shared by every service (pydantic-settings; environment variables win).

Each class reads its own prefix, so a service composes only what it needs. All are frozen: a
settings object is built once in `main.py` and handed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "LOCAL_POSTGRES_DSN",
    "AuthSettings",
    "CorsSettings",
    "HttpSettings",
    "KafkaSettings",
    "ObservabilitySettings",
    "TopicSettings",
]

LOCAL_POSTGRES_DSN = "postgresql://jobrelay@127.0.0.1:54329/jobrelay"
"""The database of `jobrelay dev postgres up`: where the stores go by default when switched to PostgreSQL."""


class KafkaSettings(BaseSettings):
    """Where the Kafka cluster is and how to talk to it."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_KAFKA_", frozen=True, extra="ignore", populate_by_name=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "JOBRELAY_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    client_id: str = Field(default="jobrelay", description="Client id prefix sent to the brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: str | None = Field(default=None, description="e.g. PLAIN or SCRAM-SHA-512.")
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: str | None = Field(default=None, repr=False, description="SASL password (never logged).")
    schema_registry_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("JOBRELAY_SCHEMA_REGISTRY_URL", "JOBRELAY_KAFKA_SCHEMA_REGISTRY_URL"),
        description="Confluent Schema Registry URL; unset means Avro single-object encoding.",
    )
    request_timeout_ms: int = Field(default=30_000, ge=1000, description="Kafka client request timeout.")


class TopicSettings(BaseSettings):
    """The four topics, and how `jobrelay topics ensure` creates them."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_TOPICS_", frozen=True, extra="ignore")

    prefix: str = Field(default="", description="Prepended to every topic name (for shared clusters).")
    partitions: int = Field(default=12, ge=1, le=10_000, description="Partition count shared by all four topics.")
    replication_factor: int = Field(default=1, ge=1, le=32, description="Replicas of each topic (3 in production).")
    min_insync_replicas: int = Field(default=1, ge=1, le=32, description="Replicas that must have a write (2 of 3).")
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1, description="Retention of the event topics.")
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1, description="Retention of job-dlq.")

    @property
    def requested(self) -> str:
        """Name of the job-requested topic."""
        return f"{self.prefix}job-requested"

    @property
    def progress(self) -> str:
        """Name of the job-progress topic."""
        return f"{self.prefix}job-progress"

    @property
    def completed(self) -> str:
        """Name of the job-completed topic."""
        return f"{self.prefix}job-completed"

    @property
    def dlq(self) -> str:
        """Name of the job-dlq topic."""
        return f"{self.prefix}job-dlq"

    def all(self) -> tuple[str, str, str, str]:
        """All four topic names, in life-cycle order."""
        return (self.requested, self.progress, self.completed, self.dlq)


class ObservabilitySettings(BaseSettings):
    """Logging and tracing. OTEL_* variables keep their standard names."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_", frozen=True, extra="ignore", populate_by_name=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Lowest level logged.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON otherwise."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "JOBRELAY_OTLP_ENDPOINT"),
        description="OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318); unset means no export.",
    )


class AuthSettings(BaseSettings):
    """Who may call the HTTP APIs (the intake and the status projector), and how callers are told apart."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_AUTH_", frozen=True, extra="ignore", populate_by_name=True)

    mode: Literal["keys", "gateway"] = Field(
        default="keys",
        validation_alias=AliasChoices("JOBRELAY_AUTH", "JOBRELAY_AUTH_MODE"),
        description="keys: `Authorization: Bearer <API key>` on every API; gateway: a gateway in front "
        "authenticates and names the tenant in `JOBRELAY_AUTH_TENANT_HEADER` (believed as sent).",
    )
    keys_file: Path = Field(
        default=Path("jobrelay-keys.json"),
        description="The API keys (hashed), tenants' webhook secrets and the id secret; shared by the intake, "
        "projector and notifier, re-read when it changes (`jobrelay keys …` writes it).",
    )
    reload_s: float = Field(default=1.0, gt=0, description="How often the key file is checked for changes.")
    tenant_header: str = Field(
        default="X-Client-Id", description="gateway mode: the header naming the tenant (absent: `anonymous`)."
    )


class HttpSettings(BaseSettings):
    """Limits of every HTTP server (intake, status projector, the health endpoints of the others)."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_HTTP_", frozen=True, extra="ignore")

    max_head_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request head (request line and headers); 431 past it."
    )
    max_headers: int = Field(default=100, ge=8, description="Most header fields in a request; 431 past it.")
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="Time a request body may take to arrive after its head; then 408 and close."
    )


class CorsSettings(BaseSettings):
    """Which browser origins may call the intake and the status projector (CORS); none by default."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_CORS_", frozen=True, extra="ignore")

    origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated origins allowed to call the APIs from a browser, e.g. "
        "`https://app.example.com`; `*` allows any; empty (the default): no cross-origin access.",
    )
    max_age_s: int = Field(default=600, ge=0, description="How long a browser may cache a preflight answer.")

    @field_validator("origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value
