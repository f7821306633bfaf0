"""The intake's link to Kafka: a producer started in the background and watched for readiness.

The intake serves /healthz at once and is ready (/readyz 200) only while its producer is
connected: started, and the brokers answered a metadata request within the last probe. A broker
that is down at start-up is retried with backoff instead of crashing the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from jobrelay.config.settings import TopicSettings
from jobrelay.messaging.clients import EventProducer
from jobrelay.messaging.codec import AvroCodec
from jobrelay.observability.logging import get_logger

__all__ = ["BrokerLink"]

log = get_logger(__name__)
SOURCE = "/jobrelay/intake"


class BrokerLink:
    """Owns the producer; `publisher` is None until it connected once."""

    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        codec: AvroCodec,
        topics: TopicSettings,
        *,
        probe_interval: float = 2.0,
        probe_timeout: float = 3.0,
    ) -> None:
        self._factory, self._codec, self._topics = factory, codec, topics
        self._interval, self._timeout = probe_interval, probe_timeout
        self.producer: AIOKafkaProducer | None = None
        self.publisher: EventProducer | None = None
        self.connected = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[BrokerLink]:
        """Connect and watch in the background; on exit stop watching and flush the producer."""
        task = asyncio.create_task(self._watch(), name="intake-broker-link")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.producer is not None:
                await self.producer.stop()  # flushes what is still buffered
            self.connected = False

    def mark(self, ok: bool) -> None:
        """Record what a publish just learned about the connection."""
        self.connected = ok and self.publisher is not None

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """For /readyz: ready while the producer is connected."""
        state = "connected" if self.connected else "starting" if self.publisher is None else "disconnected"
        return self.connected, {"kafka": state}

    async def _watch(self) -> None:
        delay, producer = 0.5, await self._start()
        while producer is None:
            await asyncio.sleep(delay)
            delay, producer = min(delay * 2, 10.0), await self._start()
        while True:
            await asyncio.sleep(self._interval)
            self.mark(await self._probe(producer))

    async def _start(self) -> AIOKafkaProducer | None:
        producer = self._factory()
        try:
            await asyncio.wait_for(producer.start(), self._timeout * 3)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("kafka not reachable yet", error=str(exc))
            await producer.stop()
            return None
        except asyncio.CancelledError:  # shutting down while connecting: close what was opened
            await producer.stop()
            raise
        self.producer = producer
        self.publisher = EventProducer(producer, self._codec, self._topics, SOURCE)
        self.connected = True
        log.info("kafka producer connected")
        return producer

    async def _probe(self, producer: AIOKafkaProducer) -> bool:
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.connected:
                log.warning("kafka connection lost", error=str(exc))
            return False
        if not self.connected:
            log.info("kafka connection back")
        return True
