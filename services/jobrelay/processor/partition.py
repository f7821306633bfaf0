"""One owned input partition: its ledger and its jobs; their events go out through the shared outbox.

Events are encoded (and their trace headers taken) when a job emits them and queued in the
process's outbox, which writes them in its next transaction together with this partition's
commit point and ledger metadata (see `jobrelay.processor.outbox`). Outputs go to the same
partition number as the input (the topics are co-partitioned by job id). Progress and heartbeats
go through the same transactions, so read_committed readers see them.

A job's ledger entry (the attempt it runs) is recorded when the attempt starts, and the handler
runs at once; its STARTED event is held back until the next transaction is put together. A job
that finished by then needs no STARTED record: it is folded into the outcome (JobCompleted has
`started_at` and the attempt), so a quick job costs one output record instead of two, and
read_committed readers could never have seen it running anyway. A job still running then, or one
that reports progress first, gets its STARTED written before anything else of that attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from confluent_kafka import TopicPartition
from opentelemetry import context as otel_context
from opentelemetry import trace

from jobrelay.config.settings import TopicSettings
from jobrelay.jobs.events import Event
from jobrelay.messaging.clients import topic_for
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.headers import event_headers
from jobrelay.observability.tracing import KafkaHeaders, inject_context, is_recording, produce_span
from jobrelay.processor.kafka import Output
from jobrelay.processor.ledger import Attempted, Ledger
from jobrelay.processor.outbox import Outbox

__all__ = ["Cancellable", "PartitionWorker"]

SOURCE = "/jobrelay/processor"


_TRACE_HEADERS: dict[tuple[int, int], KafkaHeaders] = {}


def _trace_headers() -> KafkaHeaders:
    """The current span's trace headers, injected once per span (a job emits several events from one)."""
    context = trace.get_current_span().get_span_context()
    key = (context.trace_id, context.span_id)
    headers = _TRACE_HEADERS.get(key)
    if headers is None:
        if len(_TRACE_HEADERS) > 10_000:
            _TRACE_HEADERS.clear()
        headers = _TRACE_HEADERS[key] = []
        inject_context(headers)
    return headers


class Cancellable(Protocol):
    """A job run that a cancel request can reach."""

    def cancel(self, offset: int) -> None:
        """Stop the job (the cancel request is at `offset`; it is finished with the job's outcome)."""


class PartitionWorker:
    """Owns one partition of job-requested until it is revoked or the process stops."""

    def __init__(
        self,
        tp: TopicPartition,
        outbox: Outbox,
        codec: AvroCodec,
        topics: TopicSettings,
        *,
        ledger: Ledger,
        on_change: Callable[[], None],
    ) -> None:
        self.tp, self.outbox, self.codec, self.topics = tp, outbox, codec, topics
        self.ledger, self.on_change = ledger, on_change
        self.closing = False
        self.live = True  # False once handed back or lost: the outbox no longer commits what it queued
        self.running: set[asyncio.Task[Any]] = set()  # jobs past their start: waited for on close
        self.runs: dict[str, Cancellable] = {}  # job id → its run, until its outcome is queued
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starts: dict[str, tuple[Event, otel_context.Context]] = {}  # STARTED events held back

    @property
    def partition(self) -> int:
        """The input partition number (also where this partition's outputs go)."""
        return int(self.tp.partition)

    def position(self) -> tuple[int, str]:
        """The offset to commit and the ledger metadata that goes with it."""
        return self.ledger.commit_point(), self.ledger.metadata()

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a job's coroutine as a task this worker tracks (and cancels when it closes)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def emit(self, *events: Event) -> None:
        """Queue events for the next transaction (trace headers from the current context)."""
        recording = is_recording()
        for event in events:
            if self._starts and event.job_id in self._starts:
                self._release(event.job_id)  # the attempt's STARTED goes first
            topic = topic_for(event, self.topics)
            if recording:
                with produce_span(topic, event.job_id):
                    headers = event_headers(event, SOURCE)
            else:  # the job's consume span is the parent readers continue from: same trace, two spans fewer
                headers = event_headers(event, SOURCE, _trace_headers())
            key = event.job_id.encode() if event.job_id else None
            self.outbox.emit(self, Output(topic, self.partition, key, self.codec.encode(event), headers))
        self.outbox.touch(self)

    def start(self, offset: int, attempt: int, started: Event) -> None:
        """Record the start of `attempt` (ledger now, its STARTED event when the next transaction is made)."""
        self.ledger.attempted(offset, Attempted(attempt))
        if started.job_id is None:
            raise ValueError("a STARTED event names its job")
        self._starts[started.job_id] = (started, otel_context.get_current())
        self.outbox.hold(self)

    def release(self) -> None:
        """Write the held-back STARTED events of jobs still running (the outbox calls it per transaction)."""
        for job_id in list(self._starts):
            self._release(job_id)

    def _release(self, job_id: str) -> None:
        started, context = self._starts.pop(job_id)
        token = otel_context.attach(context)  # the job's span: its trace headers and produce span
        try:
            self.emit(started)
        finally:
            otel_context.detach(token)

    def retry_later(self, offset: int, attempt: int, retry_at_ms: int, scheduled: Event) -> None:
        """Record that `attempt` failed and the next one is due at `retry_at_ms`."""
        self.ledger.attempted(offset, Attempted(attempt, retry_at_ms))
        self.emit(scheduled)

    def finish(self, offset: int, *events: Event) -> None:
        """The job at `offset` is over: its events and the offset go out in the same transaction."""
        self.ledger.finish(offset)
        for event in events:
            if event.job_id is not None:
                self._starts.pop(event.job_id, None)  # folded into the outcome (see the module docstring)
        self.emit(*events)
        self.on_change()

    def skip(self, offset: int) -> None:
        """Nothing to do for `offset` (finished before, or a duplicate): let the commit pass it."""
        self.ledger.finish(offset)
        self.outbox.touch(self)

    async def close(self, grace: float) -> int:
        """Stop taking jobs, give running ones `grace` seconds, cancel the rest; returns how many were cut off.

        The caller commits what the finished jobs emitted (`Outbox.flush`) before handing the partition back.
        """
        self.closing = True
        for task in self._tasks - self.running:
            task.cancel()  # queued or waiting for a retry: the ledger already says where they stand
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace)
        cut_off = len(self.running)
        for task in set(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return cut_off
