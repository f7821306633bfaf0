"""The intake's link to Kafka: a librdkafka producer, watched in the background for readiness.

The intake serves /healthz at once and is ready (/readyz 200) only while its producer is
connected: the brokers answered a metadata request within the last probe. librdkafka reconnects
on its own; a broker that is down at start-up is probed again with backoff instead of crashing
the process, and requests meanwhile get a 503. A producer that librdkafka declares fatally
broken (an idempotence error) is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from jobrelay.messaging.acked import AckedProducer, PublishError
from jobrelay.observability.logging import get_logger

__all__ = ["BrokerLink"]

log = get_logger(__name__)


class BrokerLink:
    """Owns the producer; `publisher` is None until the brokers answered once."""

    def __init__(
        self,
        factory: Callable[[], AckedProducer],
        *,
        probe_interval: float = 2.0,
        probe_timeout: float = 3.0,
        flush_timeout: float = 10.0,
    ) -> None:
        self._factory = factory
        self._interval, self._timeout, self._flush_timeout = probe_interval, probe_timeout, flush_timeout
        self.publisher: AckedProducer | None = None
        self.connected = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[BrokerLink]:
        """Connect and watch in the background; on exit stop watching and flush the producer."""
        producer = self._factory()  # a bad configuration fails here, at start-up, loudly
        task = asyncio.create_task(self._watch(producer), name="intake-broker-link")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.connected = False
            await self._close(self.publisher or producer)

    def mark(self, ok: bool) -> None:
        """Record what a publish just learned about the connection."""
        self.connected = ok and self.publisher is not None

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """For /readyz: ready while the producer is connected."""
        state = "connected" if self.connected else "starting" if self.publisher is None else "disconnected"
        return self.connected, {"kafka": state}

    async def _watch(self, producer: AckedProducer) -> None:
        delay = 0.5
        while not await self._probe(producer):
            log.warning("kafka not reachable yet", retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        self.publisher, self.connected = producer, True
        log.info("kafka producer connected")
        while True:
            await asyncio.sleep(self._interval)
            if self.publisher is not None and self.publisher.fatal is not None:
                await self._replace(self.publisher)
            self.mark(self.publisher is not None and await self._probe(self.publisher))

    async def _probe(self, producer: AckedProducer) -> bool:
        try:
            await asyncio.wait_for(producer.probe(self._timeout), self._timeout + 1)
        except (PublishError, TimeoutError) as exc:
            if self.connected:
                log.warning("kafka connection lost", error=str(exc))
            return False
        if self.publisher is not None and not self.connected:
            log.info("kafka connection back")
        return True

    async def _replace(self, broken: AckedProducer) -> None:
        log.error("kafka producer failed fatally: replacing it", error=str(broken.fatal))
        self.publisher = self._factory()
        await self._close(broken)

    async def _close(self, producer: AckedProducer) -> None:
        left = await producer.close(self._flush_timeout)
        if left:
            log.warning("records still unacknowledged at shutdown", count=left)
