"""Publish events with librdkafka and await each one's acknowledgement on the event loop.

`AckedProducer.publish()` encodes the event (Avro value, job id key, CloudEvents headers, a
PRODUCER span) and hands it to librdkafka without blocking; the returned future resolves when
the brokers acknowledged it (acks=all, idempotent) or fails with `PublishError`. librdkafka
batches whatever was produced within `linger.ms` into one produce request, so many concurrent
callers share one round trip (group commit) and each still waits for its own record's ack.

One daemon thread serves librdkafka's delivery reports (`poll`); each poll's reports reach the
loop in one `call_soon_threadsafe`. Blocking calls (metadata, flush) run in threads of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from jobrelay.config.settings import TopicSettings
from jobrelay.jobs.events import Event
from jobrelay.messaging.clients import topic_for
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import event_headers
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import PRODUCED
from jobrelay.observability.tracing import produce_span

__all__ = ["AckedProducer", "Position", "PublishError", "in_thread"]

log = get_logger(__name__)
T = TypeVar("T")
Position = tuple[int, int]  # (partition, offset) of an acknowledged record
_Ack = tuple["asyncio.Future[Position]", str, KafkaError | None, Position]  # (waiter, topic, error, where)
POLL_S = 0.05  # how long one poll waits for reports: bounds how fast close() stops the thread


class PublishError(Exception):
    """librdkafka refused or failed the record (queue full, timed out, broker error)."""


def in_thread(loop: asyncio.AbstractEventLoop, call: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run a blocking `call` in a daemon thread; its outcome arrives as a future on `loop`.

    A daemon thread rather than the loop's executor: a metadata request to a broker that is
    down blocks for its whole timeout, and nothing should wait for it at shutdown.
    """
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller gave up waiting
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (call(), None)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class AckedProducer:
    """An idempotent acks=all librdkafka producer of jobrelay events, awaited per record."""

    def __init__(self, config: dict[str, Any], codec: AvroCodec, topics: TopicSettings, source: str) -> None:
        self._loop = asyncio.get_running_loop()
        # librdkafka's own log lines go through logging (structlog's format), not straight to stderr.
        self._producer = Producer(config | {"error_cb": self._on_error, "logger": logging.getLogger("librdkafka")})
        self.codec, self.topics, self.source = codec, topics, source  # source: the CloudEvents ce_source
        self.fatal: KafkaError | None = None  # set once librdkafka says the producer is unusable
        self._acks: list[_Ack] = []
        self._counters: dict[str, Counter] = {}  # PRODUCED by topic, looked up once
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._serve, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def publish(self, event: Event) -> asyncio.Future[Position]:
        """Hand `event` to librdkafka; the future resolves to (partition, offset) once Kafka acknowledged it."""
        topic = topic_for(event, self.topics)
        done: asyncio.Future[Position] = self._loop.create_future()
        with produce_span(topic, event.job_id):
            value, key = self.codec.encode(event), event.job_id.encode() if event.job_id else None
            headers = cast("list[tuple[str, str | bytes | None]]", event_headers(event, self.source))
            try:
                self._producer.produce(
                    topic, value, key, headers=headers, on_delivery=lambda e, m: self._acked(done, topic, e, m)
                )
            except (BufferError, KafkaException) as exc:  # queue full, or refused before sending
                raise PublishError(str(exc)) from exc
        return done

    async def probe(self, timeout: float) -> None:
        """Return once the brokers answered a metadata request; raise PublishError if not in time."""
        # One topic's metadata: the whole cluster's (1,174 topics on the shared dev broker) took
        # 127 ms to turn into Python objects, every probe.
        topic = self.topics.requested
        try:
            await in_thread(self._loop, lambda: self._producer.list_topics(topic, timeout), "kafka-probe")
        except KafkaException as exc:
            raise PublishError(str(exc)) from exc

    async def close(self, timeout: float) -> int:
        """Stop serving reports, flush what is buffered (up to `timeout` s); returns what is left."""
        self._stopping.set()
        await asyncio.to_thread(self._poller.join)
        left = await in_thread(self._loop, lambda: self._producer.flush(timeout), "kafka-flush")
        self._settle(self._take())
        return left

    def _serve(self) -> None:
        # The only thread that polls until close(); close() flushes (and so polls) after it ended.
        while not self._stopping.is_set():
            self._producer.poll(POLL_S)
            if self._acks:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                    self._loop.call_soon_threadsafe(self._settle, self._take())

    def _take(self) -> list[_Ack]:
        acks, self._acks = self._acks, []
        return acks

    def _acked(self, done: asyncio.Future[Position], topic: str, error: KafkaError | None, message: Message) -> None:
        # runs in the polling thread, inside poll()
        self._acks.append((done, topic, error, (message.partition() or 0, message.offset() or -1)))

    def _settle(self, acks: list[_Ack]) -> None:
        for done, topic, error, where in acks:
            if done.done():  # the caller stopped waiting (its deadline passed)
                if error is not None:
                    log.debug("late publish failed", error=error.str())
            elif error is not None:
                done.set_exception(PublishError(error.str()))
            else:
                done.set_result(where)
                self._produced(topic).inc()

    def _produced(self, topic: str) -> Counter:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = PRODUCED.labels(self.source, topic)
        return counter

    def _on_error(self, error: KafkaError) -> None:
        # Connection trouble is logged by librdkafka itself (the logger above) and seen by probes.
        if error.fatal():  # e.g. an idempotence sequence error: only a new producer can go on
            self.fatal = error
            log.error("kafka producer failed fatally", error=error.str())
