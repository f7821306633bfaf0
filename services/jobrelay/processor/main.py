"""Wiring of the processor service: settings, logging, tracing, handlers, the HTTP side, the engine."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from jobrelay.config.settings import KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.http import health_router, install_problem_handlers, run_service, serve
from jobrelay.observability import configure_logging, configure_tracing, get_logger
from jobrelay.processor.engine import Engine
from jobrelay.processor.handlers import Registry, load_registry
from jobrelay.processor.service import running
from jobrelay.processor.settings import ProcessorSettings

__all__ = ["Config", "create_app", "main", "run"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Config:
    """Everything the processor is configured with (read from the environment by default)."""

    processor: ProcessorSettings = field(default_factory=ProcessorSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)


@dataclass
class _State:
    engine: Engine | None = None


def create_app(config: Config, registry: Registry, on_fatal: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The health/metrics app; its lifespan runs the processor (`on_fatal` defaults to stopping the process)."""
    state = _State()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(
            config.kafka, config.topics, config.processor, registry, on_fatal or _stop_process
        ) as engine:
            state.engine = engine
            log.info("processor started", handlers=registry.types(), group=config.processor.group_id)
            yield
        log.info("processor stopped")

    def readiness() -> tuple[bool, dict[str, object]]:
        return state.engine.readiness() if state.engine else (False, {"status": "starting"})

    app = FastAPI(title="jobrelay processor", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    app.include_router(health_router(readiness))
    app.state.processor = state
    return app


def _stop_process(_: BaseException) -> None:
    # The engine cannot go on (e.g. fenced by another owner): stop the server as SIGTERM would,
    # so the lifespan drains and closes everything; main() then exits non-zero.
    os.kill(os.getpid(), signal.SIGTERM)


async def run(config: Config) -> int:
    """Serve until SIGTERM; returns the process exit code."""
    configure_logging("processor", config.observability.log_level, config.observability.log_format)
    configure_tracing("jobrelay-processor", config.observability.otlp_endpoint)
    registry = load_registry(config.processor.handler_modules)
    if not registry.types():
        log.warning("no job handlers: set JOBRELAY_PROCESSOR_HANDLER_MODULES; every job fails as unknown_type")
    app = create_app(config, registry)
    await serve(app, config.processor.host, config.processor.port, grace=config.processor.shutdown_grace_s)
    engine = app.state.processor.engine
    return 1 if engine is not None and engine.failed is not None else 0


def main() -> None:
    """Entry point of `python -m jobrelay.processor` and `jobrelay processor`."""
    raise SystemExit(run_service(run(Config())))
