"""Wiring: settings in, clients built once in an AsyncExitStack, two tasks run, SIGTERM drains them.

The consumer loop records deliveries from job-completed; the dispatcher attempts them. Health,
readiness and metrics are served on 127.0.0.1:8002 by default.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from jobrelay.config.settings import AuthSettings, KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.http import health_router, run_service, serve
from jobrelay.messaging.clients import EventProducer, make_codec, make_consumer, make_producer
from jobrelay.messaging.loop import ConsumerLoop
from jobrelay.notifier.attempt import Attempter
from jobrelay.notifier.delivery import Dispatcher
from jobrelay.notifier.recorder import Recorder, SeekToStoredOffsets
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import DeliveryStore, open_store
from jobrelay.observability import configure_logging, configure_tracing, get_logger
from jobrelay.security.keys import KeyRing

__all__ = ["Notifier", "create_app", "run", "running"]

SERVICE = "notifier"
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notifier:
    """The running notifier's parts (tests look at them; the app asks them whether it is ready)."""

    store: DeliveryStore
    loop: ConsumerLoop
    dispatcher: Dispatcher
    tasks: tuple[asyncio.Task[object], ...]

    def ready(self) -> tuple[bool, dict[str, object]]:
        """Ready while both the consumer loop and the dispatcher run."""
        alive = all(not task.done() for task in self.tasks)
        return alive, {"consuming": alive, "in_flight": self.dispatcher.in_flight}


def _stop_process(task: asyncio.Task[object]) -> None:
    """A crashed loop must not leave a process that looks alive: ask the server to shut down."""
    if not task.cancelled() and task.exception() is not None:
        log.error("notifier task failed, shutting down", task=task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)


async def _producer(stack: AsyncExitStack, kafka: KafkaSettings, topics: TopicSettings) -> EventProducer:
    producer = make_producer(kafka, SERVICE)
    await producer.start()
    stack.push_async_callback(producer.stop)
    return EventProducer(producer, make_codec(kafka), topics, f"/jobrelay/{SERVICE}")


def _dispatcher(
    settings: NotifierSettings, store: DeliveryStore, client: httpx.AsyncClient, publisher: EventProducer
) -> Dispatcher:
    auth = AuthSettings()  # the key file holds the tenants' own webhook secrets
    return Dispatcher(
        store,
        Attempter(settings, client, store, keys=KeyRing(auth.keys_file, auth.reload_s)),
        publisher.publish,
        max_concurrency=settings.max_concurrency,
        per_host=settings.per_host_concurrency,
    )


async def _loop(
    stack: AsyncExitStack,
    settings: NotifierSettings,
    kafka: KafkaSettings,
    topic: str,
    store: DeliveryStore,
    dispatcher: Dispatcher,
    publisher: EventProducer,
) -> ConsumerLoop:
    consumer = make_consumer(kafka, SERVICE, group_id=settings.group_id)
    await consumer.start()
    stack.push_async_callback(consumer.stop)
    consumer.subscribe([topic], listener=SeekToStoredOffsets(consumer, store))
    recorder = Recorder(store, settings, dispatcher.wake, publisher.publish)
    return ConsumerLoop(consumer, publisher.codec, recorder.handle, service=SERVICE, dead_letters=publisher)


@asynccontextmanager
async def running(
    settings: NotifierSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    on_failure: Callable[[asyncio.Task[object]], None] = _stop_process,
) -> AsyncIterator[Notifier]:
    """Run the notifier until the block exits; then stop consuming, drain attempts, close clients."""
    async with AsyncExitStack() as stack:
        store = await open_store(settings)
        stack.push_async_callback(store.close)
        publisher = await _producer(stack, kafka, topics)
        # trust_env=False: an HTTP(S)_PROXY would connect on our behalf and defeat the address check.
        client = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False, trust_env=False))
        dispatcher = _dispatcher(settings, store, client, publisher)
        loop = await _loop(stack, settings, kafka, topics.completed, store, dispatcher, publisher)
        tasks = (asyncio.create_task(loop.run(), name="consume"), asyncio.create_task(dispatcher.run(), name="deliver"))
        for task in tasks:
            task.add_done_callback(on_failure)
        where = str(settings.database) if settings.store == "sqlite" else "postgres"  # a DSN may hold a password
        log.info("notifier started", topic=topics.completed, group=settings.group_id, database=where)
        try:
            yield Notifier(store, loop, dispatcher, tasks)
        finally:
            await _shutdown(loop, dispatcher, tasks, settings.shutdown_grace)


async def _shutdown(
    loop: ConsumerLoop, dispatcher: Dispatcher, tasks: tuple[asyncio.Task[object], ...], grace: float
) -> None:
    loop.stop()  # finish (record and commit) the batch in hand, fetch no more
    dispatcher.stop()  # start no more attempts
    await asyncio.gather(*tasks, return_exceptions=True)
    await dispatcher.drain(grace)
    log.info("notifier stopped")


def create_app(settings: NotifierSettings, kafka: KafkaSettings, topics: TopicSettings) -> FastAPI:
    """The health/metrics app whose lifespan runs the notifier."""
    holder: list[Notifier] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(settings, kafka, topics) as notifier:
            holder.append(notifier)
            yield

    def readiness() -> tuple[bool, dict[str, object]]:
        return holder[0].ready() if holder else (False, {"consuming": False})

    app = FastAPI(title="jobrelay notifier", lifespan=lifespan, openapi_url=None)
    app.include_router(health_router(readiness))
    return app


def run() -> None:
    """Run the notifier with settings from the environment until SIGTERM/SIGINT."""
    settings, observability = NotifierSettings(), ObservabilitySettings()
    configure_logging(SERVICE, observability.log_level, observability.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our own line per attempt says more
    configure_tracing(f"jobrelay-{SERVICE}", observability.otlp_endpoint)
    if not settings.signing_secrets:
        log.warning("no JOBRELAY_NOTIFIER_SIGNING_SECRETS: callback deliveries are recorded and held, never unsigned")
    app = create_app(settings, KafkaSettings(), TopicSettings())
    run_service(serve(app, settings.host, settings.port, grace=settings.shutdown_grace + 5))
