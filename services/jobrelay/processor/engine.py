"""The engine: owned partitions, admission of records, bounded concurrency, pausing, draining.

It plugs into the shared ConsumerLoop (commit=False: offsets go through the partitions'
transactions): `handle` is its batch handler and only hands work out, so fetching never waits
for a job; `on_poison` takes the undecodable records, so their dead letters are written in the
partition's transaction too. A partition pauses while it holds `max_pending_per_partition`
unfinished jobs or `max_window` offsets above its commit point, and resumes as jobs finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import DeadLetterReason, Event, JobDeadLettered, JobRequested
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.loop import Received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import DEAD_LETTERED
from jobrelay.processor import metrics
from jobrelay.processor.admission import admit
from jobrelay.processor.assignment import take_over
from jobrelay.processor.handlers import Registry
from jobrelay.processor.outputs import dead_letter
from jobrelay.processor.partition import PartitionWorker
from jobrelay.processor.runner import JobRun, RunConfig
from jobrelay.processor.settings import ProcessorSettings

__all__ = ["Clients", "Engine"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Clients:
    """The Kafka clients the engine works with (built and closed by the service)."""

    consumer: AIOKafkaConsumer  # the group member on job-requested
    admin: AIOKafkaAdminClient  # reads committed offsets with their metadata
    reader: AIOKafkaConsumer  # reads job-completed on takeover


class Engine:
    """Turns records of job-requested into job runs on the partitions this process owns."""

    def __init__(
        self,
        clients: Clients,
        codec: AvroCodec,
        registry: Registry,
        *,
        kafka: KafkaSettings,
        topics: TopicSettings,
        settings: ProcessorSettings,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.clients, self.codec, self.registry = clients, codec, registry
        self.kafka, self.topics, self.settings = kafka, topics, settings
        self.workers: dict[int, PartitionWorker] = {}
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self.failed: BaseException | None = None
        self._on_fatal = on_fatal
        self._paused: set[int] = set()
        self._closed = False  # set by shutdown(); a takeover still in progress then backs out
        self._joined = False  # the group gave us an assignment (possibly empty) at least once
        self._run_config = RunConfig(
            settings.default_timeout_s,
            settings.heartbeat_interval_s,
            settings.backoff_base_s,
            settings.backoff_max_s,
            settings.max_result_bytes,
            settings.worker_id,
        )

    @property
    def listener(self) -> ConsumerRebalanceListener:
        """The rebalance listener to subscribe with."""
        return _Listener(self)

    async def handle(self, batch: Sequence[Received]) -> None:
        """Admit each record of the batch (the ConsumerLoop's batch handler); never waits for jobs."""
        for received in batch:
            worker = self.workers.get(received.partition)
            if worker is None or worker.closing:
                continue  # no longer ours: the next owner fetches it again from the committed offset
            self._admit(worker, received)
        self.balance()

    async def on_poison(self, record: ConsumerRecord[bytes, bytes], error: SerializationError) -> None:
        """Dead-letter an undecodable record in its partition's transaction (UNDECODABLE)."""
        # Must not suspend: the loop hands the batch's decodable records over right after this.
        worker = self.workers.get(record.partition)
        if worker is None or worker.closing:
            return
        worker.ledger.received(record.offset)
        worker.finish(record.offset, dead_letter(record, DeadLetterReason.UNDECODABLE, str(error)))
        DEAD_LETTERED.labels("processor", DeadLetterReason.UNDECODABLE.value).inc()
        log.warning("undecodable record dead-lettered", partition=record.partition, offset=record.offset)

    def _admit(self, worker: PartitionWorker, received: Received) -> None:
        offset = received.offset
        worker.ledger.received(offset)
        verdict = admit(received, finished=worker.ledger.is_done(offset), seen=worker.seen, registry=self.registry)
        if verdict.verdict in ("finished", "duplicate"):
            if verdict.verdict == "duplicate":
                metrics.DUPLICATES.labels("ignored").inc()
                log.info("duplicate request ignored", job_id=_job_id(received), offset=offset)
            worker.skip(offset)
            return
        request = received.event
        if isinstance(request, JobRequested) and verdict.verdict != "conflict":
            worker.seen[request.job_id] = request.request_hash
        if verdict.verdict != "run":
            self._settle(worker, received, verdict.verdict, verdict.events)
            return
        assert verdict.handler is not None  # noqa: S101 - "run" always carries its handler
        run = JobRun(
            worker,
            received,
            verdict.payload,
            verdict.handler,
            self._run_config,
            self.slots,
            worker.ledger.previous_attempt(offset),
        )
        worker.spawn(run.run(), name=f"job-{_job_id(received)}")

    def _settle(self, worker: PartitionWorker, received: Received, verdict: str, events: Sequence[Event]) -> None:
        worker.finish(received.offset, *events)
        for event in events:
            if isinstance(event, JobDeadLettered):
                DEAD_LETTERED.labels("processor", event.reason.value).inc()
        if verdict == "conflict":
            metrics.DUPLICATES.labels("conflict").inc()
        log.warning("request not run", verdict=verdict, job_id=_job_id(received), offset=received.offset)

    def balance(self) -> None:
        """Pause partitions that are full, resume those with room again."""
        assigned = self.clients.consumer.assignment()
        for partition, worker in self.workers.items():
            tp = TopicPartition(self.topics.requested, partition)
            full = (
                worker.ledger.pending >= self.settings.max_pending_per_partition
                or worker.ledger.window >= self.settings.max_window
            )
            if tp not in assigned:
                continue
            if full and partition not in self._paused:
                self.clients.consumer.pause(tp)
                self._paused.add(partition)
            elif not full and partition in self._paused:
                self.clients.consumer.resume(tp)
                self._paused.discard(partition)
        metrics.PAUSED_PARTITIONS.set(len(self._paused))

    async def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Take over newly assigned partitions of job-requested."""
        ours = [tp for tp in partitions if tp.topic == self.topics.requested and tp.partition not in self.workers]
        self._paused.clear()  # a new assignment starts unpaused
        for tp in ours:
            if self._closed:
                return
            await self._open(tp)
        self._joined = True

    async def _open(self, tp: TopicPartition) -> None:
        c = self.clients
        takeover = await take_over(tp, kafka=self.kafka, settings=self.settings, topics=self.topics, codec=self.codec,
                                   admin=c.admin, reader=c.reader, consumer=c.consumer)  # fmt: skip
        if self._closed:  # shutdown began while we were taking over: nothing ran, nothing to commit
            await takeover.producer.stop()
            return
        self.workers[tp.partition] = PartitionWorker(
            tp, takeover.producer, self.codec, self.topics, group_id=self.settings.group_id, ledger=takeover.ledger,
            seen=takeover.seen, linger=self.settings.commit_interval_s, on_change=self.balance, on_fatal=self.fail,
        )  # fmt: skip
        log.info("partition taken over", partition=tp.partition, committed=takeover.ledger.commit_point(),
                 known_jobs=len(takeover.seen))  # fmt: skip

    async def revoked(self, partitions: Sequence[TopicPartition], grace: float) -> None:
        """Hand partitions back: running jobs get `grace` seconds, then everything is committed."""
        workers = [self.workers.pop(tp.partition) for tp in partitions if tp.partition in self.workers]
        cut_off = await asyncio.gather(*(worker.close(grace) for worker in workers), return_exceptions=True)
        for worker, result in zip(workers, cut_off, strict=True):
            self._paused.discard(worker.tp.partition)
            if isinstance(result, BaseException):
                log.error("closing a partition failed", partition=worker.tp.partition, error=repr(result))
            elif result:
                log.warning("jobs cut off at the end of the grace period", partition=worker.tp.partition, jobs=result)

    async def shutdown(self) -> None:
        """Stop every partition (SIGTERM): running jobs get the shutdown grace, then commit."""
        self._closed = True
        partitions = [worker.tp for worker in self.workers.values()]
        await self.revoked(partitions, self.settings.shutdown_grace_s)

    def fail(self, exc: BaseException) -> None:
        """Something the engine cannot recover from (e.g. fenced): stop the service."""
        if self.failed is None:
            self.failed = exc
            log.error("processor failed", error=repr(exc))
            self._on_fatal(exc)

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready once in the consumer group and while nothing failed; details for operators."""
        details: dict[str, object] = {
            "partitions": sorted(self.workers),
            "paused": sorted(self._paused),
            "handlers": self.registry.types(),
        }
        if self.failed is not None:
            details["error"] = repr(self.failed)
        return self._joined and self.failed is None, details


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.engine.revoked(list(revoked), self.engine.settings.rebalance_grace_s)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        try:
            await self.engine.assigned(list(assigned))
        except Exception as exc:  # noqa: BLE001 - aiokafka would only log it; a half-owned partition must stop us
            self.engine.fail(exc)


def _job_id(received: Received) -> str:
    return received.key.decode(errors="replace") if received.key else "?"
