"""A rebuild's replay split over worker processes, job by job: decoding and folding use every core.

Each worker reads every partition (reading is cheap; decoding and folding are not) and decodes
only the records whose key falls to it (the key is the job id; its last character picks the
worker), folds them, encodes the rows and sends them to this process, which alone writes the
SQLite file. An event whose job id is not its key's job (a dead letter keyed otherwise, a
record without a key) goes to the job's own worker's rows at the end, folded onto the stored
row: the fold does not depend on the order of a job's events.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import traceback
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobrelay.config.settings import KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.jobs.events import Event
from jobrelay.messaging.clients import make_codec
from jobrelay.observability import configure_logging
from jobrelay.projector.feed import SKIPPED
from jobrelay.projector.replay import Folder, Replay, end_offsets, fold_onto, open_consumer, read_batch
from jobrelay.projector.store import sqlite_sql as sql
from jobrelay.projector.store.base import Loaded, Position
from jobrelay.projector.store.rows import JobRow
from jobrelay.projector.store.sqlite import SqliteStore

__all__ = ["replay_in_workers", "worker_of"]


def worker_of(job_id: str | bytes | None, workers: int) -> int:
    """The worker that folds a job (from the last character of its id; UUIDs end in a random hex digit)."""
    if not job_id:
        return 0
    last = job_id[-1]
    return (last if isinstance(last, int) else ord(last)) % workers


@dataclass(frozen=True)
class _Job:
    kafka: KafkaSettings
    topics: TopicSettings
    ends: dict[Position, int]
    index: int
    workers: int
    batch: int
    max_jobs: int


def _work(job: _Job, out: Any) -> None:
    """A worker's life: read, fold its jobs, send chunks of encoded rows, then what it saw."""
    try:
        observability = ObservabilitySettings()
        configure_logging("projector-rebuild", observability.log_level, observability.log_format)
        state, codec = Replay(job.ends), make_codec(job.kafka)

        def mine(job_id: str | bytes | None) -> bool:
            return worker_of(job_id, job.workers) == job.index

        folder = Folder(job.topics.requested, owns=mine)
        consumer = open_consumer(job.kafka, state.open)
        try:
            while state.open:
                read_batch(consumer.consume(num_messages=job.batch, timeout=0.5), state, folder, codec, consumer, mine)
                if folder.held >= job.max_jobs:
                    _send(out, folder, state)
            _send(out, folder, state)
        finally:
            consumer.close()
        out.put(("done", state.records, dict(state.positions), folder.strays, state.skipped))
    except BaseException:
        out.put(("failed", traceback.format_exc()))
        raise


def _send(out: Any, folder: Folder, state: Replay) -> None:
    out.put(("rows", [sql.params(row) for row in folder.fresh_rows()], folder.later, dict(state.positions)))
    folder.written_out()


def replay_in_workers(
    kafka: KafkaSettings, topics: TopicSettings, store: SqliteStore, *, workers: int, batch: int, max_jobs: int
) -> Replay:
    """`replay.replay` over `workers` processes, writing what they send into `store`; blocking."""
    ends = end_offsets(kafka, topics)
    context = multiprocessing.get_context("spawn")  # no fork: librdkafka and the event loop have threads
    out = context.Queue(maxsize=4 * workers)  # bounded: a slow writer slows the workers, memory stays flat
    jobs = [_Job(kafka, topics, ends, i, workers, batch, max(1, max_jobs // workers)) for i in range(workers)]
    processes = [context.Process(target=_work, args=(job, out), name=f"rebuild-{job.index}") for job in jobs]
    for process in processes:
        process.start()
    try:
        return _collect(out, processes, store, Replay(ends), topics.requested)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _collect(out: Any, processes: list[Any], store: SqliteStore, total: Replay, requested_topic: str) -> Replay:
    strays: list[Event] = []
    running = len(processes)
    while running:
        try:
            message = out.get(timeout=1.0)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("a rebuild worker died") from None
            continue
        if message[0] == "failed":
            raise RuntimeError(f"a rebuild worker failed:\n{message[1]}")
        if message[0] == "rows":
            _, encoded, later, positions = message
            store.update_now(list(later), functools.partial(_later, events=later, requested_topic=requested_topic),
                             positions, encoded)  # fmt: skip
        else:
            _, records, positions, found, skipped = message
            total.records = max(total.records, records)  # every worker counts every record
            _advance(total.positions, positions)
            strays += found
            SKIPPED.inc(skipped)
            running -= 1
    by_job: dict[str, list[Event]] = defaultdict(list)
    for event in strays:
        by_job[str(event.job_id)].append(event)
    store.update_now(list(by_job), functools.partial(_later, events=by_job, requested_topic=requested_topic),
                     total.positions)  # fmt: skip
    return total


def _later(loaded: Loaded, events: Mapping[str, list[Event]], requested_topic: str) -> list[JobRow]:
    return [fold_onto(loaded.rows.get(job_id), found, requested_topic) for job_id, found in events.items()]


def _advance(positions: dict[Position, int], seen: Mapping[Position, int]) -> None:
    for where, offset in seen.items():
        positions[where] = max(positions.get(where, 0), offset)
