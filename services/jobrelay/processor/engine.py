"""The engine: owned partitions, admission of records, bounded concurrency, pausing, draining.

The fetcher (`jobrelay.processor.fetcher`) hands it decoded batches (`handle`), undecodable
records (`on_poison`, dead-lettered in the next transaction) and rebalances (`assigned`,
`revoked`, `lost`). `handle` only hands work out, so fetching never waits for a job. A partition
pauses while it holds `max_pending_per_partition` unfinished jobs or `max_window` offsets above
its commit point, and resumes as jobs finish. Every partition's outputs and offsets go out
through one outbox, in one transaction at a time (several transactional producers in parallel,
partitions split between them, measured no faster on 2 cores: more threads, same broker work).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import ConsumerRecord
from confluent_kafka import TopicPartition

from jobrelay.config.settings import TopicSettings
from jobrelay.jobs.events import (
    DeadLetterReason,
    Event,
    JobCancelRequested,
    JobDeadLettered,
    JobError,
    JobRequested,
    TerminalStatus,
)
from jobrelay.messaging.codec import AvroCodec, SerializationError
from jobrelay.messaging.loop import Received
from jobrelay.observability.logging import get_logger
from jobrelay.observability.metrics import DEAD_LETTERED
from jobrelay.processor import metrics
from jobrelay.processor.admission import admit
from jobrelay.processor.assignment import Takeover
from jobrelay.processor.handlers import Registry
from jobrelay.processor.outbox import Outbox
from jobrelay.processor.outputs import completed, dead_letter
from jobrelay.processor.partition import PartitionWorker
from jobrelay.processor.runner import JobRun, RunConfig
from jobrelay.processor.seen import SeenIndex
from jobrelay.processor.settings import ProcessorSettings

__all__ = ["Engine", "Pausing"]

log = get_logger(__name__)


class Pausing(Protocol):
    """Pauses and resumes the fetching of partitions."""

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching `partitions`."""

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Fetch `partitions` again."""


class Engine:
    """Turns records of job-requested into job runs on the partitions this process owns."""

    def __init__(
        self,
        fetching: Pausing,
        outbox: Outbox,
        seen: SeenIndex,
        codec: AvroCodec,
        registry: Registry,
        *,
        topics: TopicSettings,
        settings: ProcessorSettings,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.fetching, self.outbox, self.seen = fetching, outbox, seen
        self.codec, self.registry, self.topics, self.settings = codec, registry, topics, settings
        self.workers: dict[int, PartitionWorker] = {}
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self.failed: BaseException | None = None
        self._on_fatal = on_fatal
        self._paused: set[int] = set()
        self._closed = False  # set by shutdown(); a takeover still in progress then backs out
        self.joined = False  # the group gave us an assignment (possibly empty) at least once
        self._run_config = RunConfig(
            settings.default_timeout_s,
            settings.heartbeat_interval_s,
            settings.backoff_base_s,
            settings.backoff_max_s,
            settings.max_result_bytes,
            settings.worker_id,
            settings.cancel_grace_s,
        )

    async def handle(self, batch: Sequence[Received]) -> None:
        """Admit each record of the batch (the fetcher's batch handler); never waits for jobs."""
        self.seen.prefetch(r.event.job_id for r in batch if isinstance(r.event, JobRequested))
        # A cancel in the same batch as its job's request (after a restart, or a backlog) stops the
        # job before it starts: the request is settled CANCELLED instead of being run.
        cancels = {(r.partition, r.event.job_id) for r in batch if isinstance(r.event, JobCancelRequested)}
        for received in batch:
            worker = self.workers.get(received.partition)
            if worker is None or worker.closing:
                continue  # no longer ours: the next owner fetches it again from the committed offset
            if isinstance(received.event, JobCancelRequested):
                self._cancel(worker, received, received.event)
            else:
                self._admit(worker, received, cancels)
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

    def _cancel(self, worker: PartitionWorker, received: Received, request: JobCancelRequested) -> None:
        """Stop the job if it runs here; a job already over (or unknown) keeps its outcome."""
        offset = received.offset
        worker.ledger.received(offset)
        if worker.ledger.is_done(offset):
            worker.skip(offset)
            return
        if received.key != request.job_id.encode():
            message = "the record key is not the job id, so the cancel cannot follow the job's request"
            letter = dead_letter(received.record, DeadLetterReason.INVALID, message) if received.record else None
            self._settle(worker, received, "invalid", (letter,) if letter is not None else ())
            return
        run = worker.runs.get(request.job_id)
        if run is None:
            worker.skip(offset)  # over already (the view shows the cancel came too late), or never ours
            metrics.child(metrics.CANCELS, "too_late").inc()
            log.info("cancel for a job that is not running", job_id=request.job_id, offset=offset)
            return
        metrics.child(metrics.CANCELS, "taken").inc()
        log.info("cancelling job", job_id=request.job_id, offset=offset)
        run.cancel(offset)

    def _admit(self, worker: PartitionWorker, received: Received, cancels: set[tuple[int, str]]) -> None:
        offset = received.offset
        worker.ledger.received(offset)
        verdict = admit(received, finished=worker.ledger.is_done(offset), seen=self.seen, registry=self.registry)
        if verdict.verdict in ("finished", "duplicate"):
            if verdict.verdict == "duplicate":
                metrics.child(metrics.DUPLICATES, "ignored").inc()
                log.info("duplicate request ignored", job_id=_job_id(received), offset=offset)
            worker.skip(offset)
            return
        request = received.event
        if isinstance(request, JobRequested) and verdict.verdict != "conflict":
            self.seen.put(request.job_id, request.request_hash)
        if verdict.verdict != "run":
            self._settle(worker, received, verdict.verdict, verdict.events)
            return
        assert verdict.handler is not None  # noqa: S101 - "run" always carries its handler
        assert isinstance(request, JobRequested)  # noqa: S101 - "run" is only ever a request
        if (received.partition, request.job_id) in cancels:
            previous = worker.ledger.previous_attempt(offset)
            attempt = previous.attempt if previous is not None else 0
            error = JobError("cancelled", "cancelled before it started")
            worker.finish(offset, completed(request, attempt, TerminalStatus.CANCELLED, error=error))
            metrics.child(metrics.JOBS_CANCELLED, request.job_type).inc()
            log.info("job cancelled before it started", job_id=request.job_id, offset=offset)
            return
        run = JobRun(
            worker,
            received,
            verdict.payload,
            verdict.handler,
            self._run_config,
            self.slots,
            worker.ledger.previous_attempt(offset),
        )
        worker.runs[request.job_id] = run
        run.task = worker.spawn(run.run(), name=f"job-{_job_id(received)}")

    def _settle(self, worker: PartitionWorker, received: Received, verdict: str, events: Sequence[Event]) -> None:
        worker.finish(received.offset, *events)
        for event in events:
            if isinstance(event, JobDeadLettered):
                DEAD_LETTERED.labels("processor", event.reason.value).inc()
        if verdict == "conflict":
            metrics.child(metrics.DUPLICATES, "conflict").inc()
        log.warning("request not run", verdict=verdict, job_id=_job_id(received), offset=received.offset)

    def balance(self) -> None:
        """Pause partitions that are full, resume those with room again."""
        pause, resume = [], []
        for partition, worker in self.workers.items():
            full = (
                worker.ledger.pending >= self.settings.max_pending_per_partition
                or worker.ledger.window >= self.settings.max_window
            )
            if full and partition not in self._paused:
                pause.append(worker.tp)
                self._paused.add(partition)
            elif not full and partition in self._paused:
                resume.append(worker.tp)
                self._paused.discard(partition)
        if pause:
            self.fetching.pause(pause)
        if resume:
            self.fetching.resume(resume)
        metrics.PAUSED_PARTITIONS.set(len(self._paused))

    async def assigned(self, takeovers: Sequence[Takeover]) -> None:
        """Start working on newly owned partitions (their ledgers restored by the fetcher)."""
        for takeover in takeovers:
            if self._closed or takeover.tp.partition in self.workers:
                continue
            self.workers[takeover.tp.partition] = PartitionWorker(
                takeover.tp,
                self.outbox,
                self.codec,
                self.topics,
                ledger=takeover.ledger,
                on_change=self.balance,
            )
            log.info("partition taken over", partition=takeover.tp.partition, committed=takeover.ledger.commit_point())
        self.joined = True  # also after an empty assignment: this process is in the group

    async def revoked(self, partitions: Sequence[int], grace: float) -> None:
        """Hand partitions back: running jobs get `grace` seconds, then everything is committed."""
        workers = [self.workers[p] for p in partitions if p in self.workers]
        cut_off = await asyncio.gather(*(worker.close(grace) for worker in workers), return_exceptions=True)
        try:
            # their outputs and final offsets, before the partitions move
            await self.outbox.flush()
        finally:
            for worker, result in zip(workers, cut_off, strict=True):
                worker.live = False
                self.workers.pop(worker.partition, None)
                self._paused.discard(worker.partition)
                if isinstance(result, BaseException):
                    log.error("closing a partition failed", partition=worker.partition, error=repr(result))
                elif result:
                    log.warning("jobs cut off at the end of the grace period", partition=worker.partition, jobs=result)

    async def lost(self, partitions: Sequence[int]) -> None:
        """Partitions another owner already has: stop their jobs and drop what they queued."""
        workers = [self.workers.pop(p) for p in partitions if p in self.workers]
        for worker in workers:
            worker.live = False
        await asyncio.gather(*(worker.close(0) for worker in workers), return_exceptions=True)
        self.outbox.forget()
        self._paused.difference_update(partitions)

    async def shutdown(self) -> None:
        """Stop every partition (SIGTERM): running jobs get the shutdown grace, then commit."""
        self._closed = True
        await self.revoked(list(self.workers), self.settings.shutdown_grace_s)

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
        return self.joined and self.failed is None, details


def _job_id(received: Received) -> str:
    return received.key.decode(errors="replace") if received.key else "?"
