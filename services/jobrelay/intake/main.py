"""Wiring: settings → SQLite store, Kafka link, Intake → the FastAPI app; `run()` serves it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from jobrelay.config.settings import AuthSettings, CorsSettings, KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.http import health_router, install_problem_handlers, serve
from jobrelay.http.auth import Authenticator
from jobrelay.http.cors import install_cors
from jobrelay.intake.accept import Intake
from jobrelay.intake.api import jobs_router
from jobrelay.intake.backlog import BacklogMonitor
from jobrelay.intake.broker import BrokerLink
from jobrelay.intake.completions import Completions
from jobrelay.intake.settings import IntakeSettings
from jobrelay.intake.store import IdempotencyStore
from jobrelay.intake.submit import SubmitHandler, SubmitRoute
from jobrelay.messaging.acked import AckedProducer
from jobrelay.messaging.clients import make_codec
from jobrelay.messaging.confluent import producer_config
from jobrelay.observability import configure_logging, configure_tracing
from jobrelay.security.keys import KeyFile

__all__ = ["Components", "create_app", "intake_producer_config", "run"]

SOURCE = "/jobrelay/intake"


def intake_producer_config(kafka: KafkaSettings, publish_timeout_s: float) -> dict[str, Any]:
    """librdkafka settings of the intake's producer (`producer_config`: idempotent, acks=all, linger 1 ms, murmur2).

    message.timeout.ms is one second past the publish timeout: a record the intake answered 503
    for is given up soon after, not retried for librdkafka's default five minutes, and a record
    acknowledged just before the deadline is never cut short.
    """
    return producer_config(kafka, "intake", **{"message.timeout.ms": int(publish_timeout_s * 1000) + 1000})


@dataclass
class Components:
    """What the lifespan built, for /readyz (empty until start-up ran)."""

    link: BrokerLink | None = None
    backlog: BacklogMonitor | None = None
    completions: Completions | None = None

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready while the producer is connected; with the processors' backlog for operators."""
        if self.link is None:
            return False, {"kafka": "starting"}
        ready, details = self.link.readiness()
        latest = self.backlog.latest if self.backlog is not None else None
        if latest is not None:
            details = {**details, "backlog": latest.records, "drain_per_s": round(latest.drain_per_s, 1)}
        if self.completions is not None:  # Prefer: wait is honoured once job-completed is read from its end
            details = {**details, "completions": "watching" if self.completions.watching else "starting"}
        return ready, details


def create_app(
    settings: IntakeSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    auth: AuthSettings | None = None,
    cors: CorsSettings | None = None,
) -> FastAPI:
    """The intake's ASGI app; its lifespan connects to Kafka and opens the idempotency store.

    `auth` and `cors` default to the environment's (`JOBRELAY_AUTH*`, `JOBRELAY_CORS_*`).
    """
    components = Components()
    authenticator = Authenticator(auth or AuthSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Intake | BacklogMonitor | Completions | None]]:
        async with AsyncExitStack() as stack:
            # Every replica derives idempotent job ids with the same secret: made once, kept in the key file.
            KeyFile(authenticator.settings.keys_file).ensure_id_secret()
            store = await stack.enter_async_context(
                IdempotencyStore.open(settings.idempotency_db, settings.idempotency_ttl_s)
            )
            codec = make_codec(kafka)
            config = intake_producer_config(kafka, settings.publish_timeout_s)
            link = BrokerLink(
                lambda: AckedProducer(config, codec, topics, SOURCE),
                flush_timeout=config["message.timeout.ms"] / 1000,
            )
            components.link = await stack.enter_async_context(link.running())
            backlog = None
            if settings.max_backlog > 0:
                monitor = BacklogMonitor(
                    kafka, topics.requested, settings.processor_group_id, interval=settings.backlog_interval_s
                )
                backlog = await stack.enter_async_context(monitor.running())
            components.backlog = backlog
            completions = None
            if settings.max_wait_s > 0:
                watch = Completions(kafka, topics.completed, codec, remember=settings.wait_recent)
                completions = await stack.enter_async_context(watch.running())
            components.completions = completions
            intake = Intake(link, store, settings.publish_timeout_s)
            yield {"intake": intake, "backlog": backlog, "completions": completions}
            components.link = None

    app = FastAPI(
        title="jobrelay intake",
        version="1",
        lifespan=lifespan,
        description=(
            "Submit jobs: 202 Accepted once the request is durably on Kafka; "
            "200 with the final status when it ends within `Prefer: wait=N`."
        ),
        # The submit handler makes the request's span; FastAPI's own would be a second.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    submit = SubmitHandler(settings, authenticator)
    app.include_router(jobs_router(submit))
    app.include_router(health_router(components.readiness))
    # The hot route skips FastAPI's routing and dependency solving (it makes its own span).
    app.add_middleware(SubmitRoute, handler=submit)
    install_cors(app, cors or CorsSettings())  # outermost: preflights never reach the submit route
    return app


async def run(settings: IntakeSettings | None = None, *, sock: socket.socket | None = None) -> None:
    """Run the intake until SIGTERM/SIGINT: in-flight requests finish, then the producer flushes.

    `sock`: a bound socket to listen on instead of host:port (one of several workers).
    """
    settings = settings or IntakeSettings()
    observability = ObservabilitySettings()
    configure_logging("intake", observability.log_level, observability.log_format)
    configure_tracing("jobrelay-intake", observability.otlp_endpoint)
    app = create_app(settings, KafkaSettings(), TopicSettings())
    await serve(app, settings.host, settings.port, grace=settings.grace_s, sock=sock)
