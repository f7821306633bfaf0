"""The projector's settings (environment variables `JOBRELAY_PROJECTOR_*`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobrelay.config.settings import LOCAL_POSTGRES_DSN

__all__ = ["ProjectorSettings"]


class ProjectorSettings(BaseSettings):
    """How the projector serves, stores and keeps its view."""

    model_config = SettingsConfigDict(
        env_prefix="JOBRELAY_PROJECTOR_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Interface the query API listens on.")
    port: int = Field(default=8001, ge=0, le=65535, description="Port of the query API (0: any free port).")
    store: Literal["sqlite", "postgres", "memory"] = Field(
        default="sqlite",
        validation_alias=AliasChoices("JOBRELAY_PROJECTOR_STORE", "JOBRELAY_STORE"),
        description="sqlite (db_path), postgres (postgres_dsn) or memory (no file, rebuilt on start); "
        "JOBRELAY_STORE sets both services'.",
    )
    db_path: Path = Field(
        default=Path("var/projector/view.sqlite"),
        description="The view: a symlink to the current generation, which `rebuild` swaps atomically.",
    )
    postgres_dsn: str = Field(
        default=LOCAL_POSTGRES_DSN,
        repr=False,
        validation_alias=AliasChoices("JOBRELAY_PROJECTOR_POSTGRES_DSN", "JOBRELAY_POSTGRES_DSN"),
        description="PostgreSQL URL of the view (`?search_path=s`: its tables in schema s); "
        "JOBRELAY_POSTGRES_DSN sets both services'.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base of the links in answers, e.g. https://jobs.example.com (default: the request's).",
    )
    batch_size: int = Field(default=500, ge=1, le=50_000, description="Records per fetch and per transaction.")
    fetch_max_wait_ms: int = Field(
        default=500, ge=0, le=10_000, description="How long the broker may hold a fetch that has nothing new."
    )
    fetch_min_bytes: int = Field(
        default=1, ge=1, description="Bytes the broker gathers before answering a fetch (within fetch_max_wait_ms)."
    )
    rebuild_batch_size: int = Field(default=5000, ge=1, le=50_000, description="Records per fetch of a rebuild.")
    rebuild_workers: int = Field(
        default=2, ge=1, le=64, description="Processes that decode and fold a rebuild (1: in the rebuild's own)."
    )
    rebuild_max_jobs: int = Field(
        default=500_000, ge=1, description="Jobs a rebuild folds in memory before writing them out (about 1 KB each)."
    )
    retention_s: float = Field(
        default=7 * 24 * 3600, gt=0, description="Terminal jobs are purged (then 410) after this."
    )
    purge_interval_s: float = Field(default=60, gt=0, description="How often the purge runs.")
    stall_after_s: float = Field(default=60, gt=0, description="A RUNNING job not heard of for this long is STALLED.")
    retry_after_s: int = Field(
        default=2,
        ge=1,
        description="Retry-After of a job not over yet whose type has no history to estimate from.",
    )
    max_retry_after_s: int = Field(
        default=60, ge=1, description="Cap of the Retry-After computed from a job's estimated completion."
    )
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a cancel or re-run waits for Kafka's acknowledgement before a 503."
    )
    max_wait_s: float = Field(default=60, ge=0, description="Cap of `Prefer: wait=N` long-polls.")
    catch_up_timeout_s: float = Field(default=5, gt=0, description="How long a 404 may wait for its partition's end.")
    ready_max_lag: int = Field(default=1000, ge=0, description="/readyz is ready while the lag is at most this.")
    lag_interval_s: float = Field(default=1.0, gt=0, description="How often the lag is measured.")
    swap_check_s: float = Field(default=1.0, gt=0, description="How often to look for a rebuilt view to swap in.")
    sse_ping_s: float = Field(default=15, gt=0, description="Keep-alive comment interval of SSE streams.")
    reads_per_s: float = Field(
        default=200, ge=0, description="Requests per second per API key (0: no limit); 429 past it."
    )
    reads_burst: float = Field(default=400, ge=1, description="Requests an API key may make at once above its rate.")
    max_streams_per_tenant: int = Field(
        default=100,
        ge=0,
        description="Open long-polls, SSE streams and WebSockets of a tenant (0: no cap); 429 past it.",
    )
    max_streams: int = Field(
        default=2000, ge=0, description="Open long-polls, SSE streams and WebSockets in all (0: no cap); 503 past it."
    )
    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size of GET /v1/jobs.")
    max_followed_jobs: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Jobs one many-job SSE stream (`job` parameters) or one WebSocket may follow by id.",
    )
    ws_auth_timeout_s: float = Field(
        default=10, gt=0, description="Seconds a WebSocket has to send its auth message before it is closed."
    )

    @property
    def stall_after(self) -> timedelta:
        """`stall_after_s` as a timedelta."""
        return timedelta(seconds=self.stall_after_s)

    @property
    def retention(self) -> timedelta:
        """`retention_s` as a timedelta."""
        return timedelta(seconds=self.retention_s)
