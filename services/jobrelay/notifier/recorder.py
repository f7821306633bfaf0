"""From consumed JobCompleted records to durable delivery rows, before Kafka's offset is committed.

The consumer loop calls `Recorder.handle` with a batch and commits the batch's offsets only after
it returned; `handle` writes the completions, their deliveries and the next offsets in one SQLite
transaction. A crash between the two re-reads the batch, and the (event id, URL) uniqueness keeps
one row per delivery: at-least-once reading, exactly one delivery row. On partition assignment the
consumer skips ahead to the offsets the store recorded, when those are further than Kafka's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from opentelemetry import trace

from jobrelay.jobs.events import DeadLetterReason, JobCompleted, JobDeadLettered, RecordHeader
from jobrelay.messaging.loop import Received
from jobrelay.notifier.metrics import RECORDED
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import Completion, DeliveryStore, NewDelivery, Partition
from jobrelay.notifier.webhooks import webhook_body
from jobrelay.observability.logging import get_logger
from jobrelay.observability.tracing import consume_span

__all__ = ["Recorder", "SeekToStoredOffsets", "deliveries_for", "misplaced"]

log = get_logger(__name__)


def deliveries_for(event: JobCompleted, settings: NotifierSettings) -> list[NewDelivery]:
    """The job's own callback URL, then every subscription to its type (one row per distinct URL)."""
    targets = [NewDelivery(event.callback_url)] if event.callback_url else []
    targets += [NewDelivery(s.url, s.key) for s in settings.subscriptions if s.matches(event.job_type)]
    return targets


def _completion(item: Received, event: JobCompleted, body: bytes) -> Completion:
    return Completion(
        event.event_id,
        event.job_id,
        event.job_type,
        body,
        item.topic,
        item.partition,
        item.offset,
        item.key,
        item.value,
        item.headers,
    )


def misplaced(item: Received) -> JobDeadLettered:
    """A dead letter for a decodable event that is not a JobCompleted (a producer wrote to the wrong topic)."""
    return JobDeadLettered(
        stage="notifier",
        reason=DeadLetterReason.UNKNOWN_TYPE,
        source_topic=item.topic,
        source_partition=item.partition,
        source_offset=item.offset,
        job_id=item.event.job_id,
        error_message=f"{type(item.event).__name__} on the job-completed topic",
        attempts=1,
        original_key=item.key,
        original_value=item.value,
        original_headers=tuple(RecordHeader(k, v) for k, v in item.headers),
    )


def _next_offsets(batch: Sequence[Received]) -> dict[Partition, int]:
    offsets: dict[Partition, int] = {}
    for item in batch:
        offsets[item.topic, item.partition] = max(offsets.get((item.topic, item.partition), 0), item.offset + 1)
    return offsets


class Recorder:
    """The notifier's batch handler for the consumer loop."""

    def __init__(
        self,
        store: DeliveryStore,
        settings: NotifierSettings,
        on_recorded: Callable[[], None],
        publish: Callable[[JobDeadLettered], Awaitable[object]],
    ) -> None:
        self.store, self.settings, self.on_recorded, self.publish = store, settings, on_recorded, publish

    async def handle(self, batch: Sequence[Received]) -> None:
        """Record the deliveries of every JobCompleted in `batch`, with the batch's next offsets."""
        rows: list[tuple[Completion, list[NewDelivery]]] = []
        for item in batch:
            if not isinstance(item.event, JobCompleted):  # only JobCompleted belongs here: set it aside, not drop it
                log.warning("not a JobCompleted, dead-lettered", topic=item.topic, offset=item.offset)
                await self.publish(misplaced(item))
                continue
            with consume_span(item.topic, item.partition, item.offset, item.event.job_id, item.headers):
                rows.append(self._row(item, item.event))
        new = await self.store.record(rows, _next_offsets(batch), time.time())
        RECORDED.inc(new)
        if new:
            self.on_recorded()

    @property
    def _retention(self) -> timedelta:
        return timedelta(seconds=self.settings.result_retention_s)

    def _row(self, item: Received, event: JobCompleted) -> tuple[Completion, list[NewDelivery]]:
        targets = deliveries_for(event, self.settings)
        trace.get_current_span().set_attribute("jobrelay.webhook.deliveries", len(targets))
        log.info("completion recorded", job_id=event.job_id, deliveries=len(targets))
        return _completion(
            item,
            event,
            webhook_body(event, self.settings.status_base_url, self._retention),
        ), targets


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume from the store's offsets where they are ahead of the committed ones."""

    def __init__(self, consumer: AIOKafkaConsumer, store: DeliveryStore) -> None:
        self.consumer, self.store = consumer, store

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do: every handled batch was recorded and committed before the loop moved on."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Seek past records this store already holds (a crash after recording, before the commit)."""
        stored = await self.store.offsets()
        for tp in assigned:
            ahead = stored.get((tp.topic, tp.partition))
            committed = await self.consumer.committed(tp)
            if ahead is not None and (committed is None or ahead > committed):
                self.consumer.seek(tp, ahead)
