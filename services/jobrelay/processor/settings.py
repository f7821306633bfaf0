"""The processor's settings (environment variables `JOBRELAY_PROCESSOR_*`)."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["METADATA_LIMIT", "ProcessorSettings"]

# Kafka's default offset.metadata.max.bytes is 4096; the ledger's state must fit in it.
METADATA_LIMIT = 4000


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ProcessorSettings(BaseSettings):
    """How the processor runs jobs. Each field is also an environment variable."""

    model_config = SettingsConfigDict(env_prefix="JOBRELAY_PROCESSOR_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address of the health/metrics HTTP server.")
    port: int = Field(default=8003, ge=0, le=65535, description="Port of the health/metrics HTTP server.")
    handler_modules: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated dotted module paths whose @handler functions are registered "
        "(`make run` adds the demo handlers, jobrelay.processor.demo; a deployment names its own).",
    )
    group_id: str = Field(default="jobrelay-processor", description="Kafka consumer group of the processors.")
    transactional_id_prefix: str = Field(
        default="jobrelay-processor",
        description="Prefix of the transactional id (`<prefix>.<group>.<host>.<slot>`, one per process).",
    )
    transaction_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        le=900_000,
        description="Kafka aborts a transaction left open this long (a processor that died mid-transaction "
        "on another host; one restarted on the same host aborts it at once).",
    )
    max_in_flight: int = Field(default=64, ge=1, le=10_000, description="Handlers running at once per process.")
    max_pending_per_partition: int = Field(
        default=100, ge=1, le=150, description="Unfinished jobs held per partition before it pauses."
    )
    max_window: int = Field(
        default=5000, ge=10, description="Offsets between the commit point and the newest record before pausing."
    )
    session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="Kafka group session timeout: how soon a dead processor's jobs move."
    )
    default_timeout_s: float = Field(default=300.0, gt=0, description="Per-attempt timeout when a job sets none.")
    heartbeat_interval_s: float = Field(default=10.0, gt=0, description="HEARTBEAT progress period of a running job.")
    backoff_base_s: float = Field(default=1.0, ge=0, description="First retry's backoff cap (doubles per attempt).")
    backoff_max_s: float = Field(default=300.0, ge=0, description="Largest backoff between attempts.")
    commit_interval_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Extra wait for outputs before a transaction commits; 0 = group commit (each transaction "
        "starts when the previous one ends, with all that came meanwhile).",
    )
    shutdown_grace_s: float = Field(default=30.0, ge=0, description="SIGTERM: time running jobs get to finish.")
    rebalance_grace_s: float = Field(default=10.0, ge=0, description="Rebalance: time running jobs get to finish.")
    cancel_grace_s: float = Field(
        default=10.0, ge=0, description="Cancel: time a running handler gets to clean up before the job ends CANCELLED."
    )
    dedupe_window_s: float = Field(
        default=86_400.0, ge=0, description="How far back job-completed is read to recognise duplicate requests."
    )
    max_result_bytes: int = Field(
        default=512 * 1024, ge=1024, le=900 * 1024, description="Largest JSON result; bigger fails the job."
    )
    worker_id: str = Field(default_factory=_worker_id, description="Names this process in JobProgress.worker.")

    @field_validator("handler_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _metadata_fits(self) -> Self:
        # Worst case of the ledger's encoding: a bitmap of the window (base64) and ~22 characters
        # per pending job. Refusing at start-up beats a commit the broker rejects at run time.
        worst = self.max_window * 4 // 24 + 8 + self.max_pending_per_partition * 22
        if worst > METADATA_LIMIT:
            raise ValueError(
                f"max_window={self.max_window} and max_pending_per_partition={self.max_pending_per_partition} "
                f"could need {worst} bytes of commit metadata; Kafka keeps {METADATA_LIMIT}: lower them"
            )
        return self
