"""Wiring: settings → clients → runtime → FastAPI app; nothing global, all built in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from jobrelay.config.settings import AuthSettings, CorsSettings, KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.http import health_router, install_problem_handlers, serve
from jobrelay.http.auth import Authenticator
from jobrelay.http.cors import install_cors
from jobrelay.jobs.state import status_at
from jobrelay.messaging.clients import EventProducer, make_codec, make_consumer, make_producer
from jobrelay.messaging.topics import ensure_topics
from jobrelay.observability import configure_logging, configure_tracing, get_logger
from jobrelay.projector.api import Context, jobs_router
from jobrelay.projector.events import many_events_router
from jobrelay.projector.runtime import Runtime
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.stream import events_router
from jobrelay.projector.views import render
from jobrelay.projector.ws import ws_router

__all__ = ["create_app", "main", "running"]

log = get_logger(__name__)


@asynccontextmanager
async def running(
    settings: ProjectorSettings, kafka: KafkaSettings, topics: TopicSettings, *, trace: bool = True
) -> AsyncIterator[Runtime]:
    """A started runtime with its Kafka clients; everything stopped on exit, in reverse order."""
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(ensure_topics, kafka, topics)  # idempotent; refuses mismatched partition counts
        codec = make_codec(kafka)
        producer = make_producer(kafka, "projector-dlq")
        await producer.start()
        stack.push_async_callback(producer.stop)
        offsets = make_consumer(kafka, "projector-offsets")  # end offsets only: never assigned
        await offsets.start()
        stack.push_async_callback(offsets.stop)
        dead_letters = EventProducer(producer, codec, topics, "/jobrelay/projector")
        runtime = Runtime(settings, kafka, topics, codec, dead_letters, offsets, trace=trace)
        await runtime.start()
        stack.push_async_callback(runtime.stop)
        log.info("projector started", store=settings.store, db_path=str(settings.db_path), topics=topics.all())
        yield runtime
    log.info("projector stopped")


def create_app(
    settings: ProjectorSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    trace: bool = True,
    auth: AuthSettings | None = None,
    cors: CorsSettings | None = None,
) -> FastAPI:
    """The projector's ASGI app; its lifespan runs the consumer (`trace`: a span per applied event).

    `auth` and `cors` default to the environment's (`JOBRELAY_AUTH*`, `JOBRELAY_CORS_*`).
    """
    context = Context(settings, Authenticator(auth or AuthSettings()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(settings, kafka, topics, trace=trace) as runtime:
            context.runtime = runtime
            try:
                yield
            finally:
                context.runtime = None

    def readiness() -> tuple[bool, dict[str, Any]]:
        return context.runtime.readiness() if context.runtime else (False, {"consumer": "starting"})

    def draw(row: JobRow, base: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        estimates = context.get().hub.estimates
        return render(
            row,
            now=now,
            stall_after=settings.stall_after,
            base=base,
            retention=settings.retention,
            estimate=estimates.estimate(row.state, status_at(row.state, now, settings.stall_after), now),
        )

    app = FastAPI(title="jobrelay projector", summary="The job status view", version="1", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router(readiness))
    app.include_router(jobs_router(context))
    app.include_router(events_router(context, lambda row, request: draw(row, context.base(request))))
    app.include_router(many_events_router(context, draw))
    app.include_router(ws_router(context, draw))
    install_cors(app, cors or CorsSettings())
    return app


async def main(settings: ProjectorSettings | None = None) -> None:
    """Run the projector until SIGTERM/SIGINT."""
    settings = settings or ProjectorSettings()
    observability = ObservabilitySettings()
    configure_logging("projector", observability.log_level, observability.log_format)
    configure_tracing("jobrelay-projector", observability.otlp_endpoint)
    # A span per applied event costs more than the fold itself: only when something exports them.
    app = create_app(settings, KafkaSettings(), TopicSettings(), trace=bool(observability.otlp_endpoint))
    await serve(app, settings.host, settings.port)
