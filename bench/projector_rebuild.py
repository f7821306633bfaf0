"""Events/s of a full projector rebuild: publish N events (jobs of 4 events each), then rebuild the view.

Run: `python -m bench.projector_rebuild [--events 1000000] [--runs 3]` with a broker on
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092). The topics it creates (unique prefix) are deleted
at the end, unless `--keep PREFIX` names them: then they are kept, and published only when empty,
so paired runs of two versions of the code rebuild the same records. The "projector-rebuild"
scenario of `python -m bench` uses `publish` and `rebuild_once` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.topics import bench_topics
from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.messaging.clients import make_codec, make_producer, topic_for
from jobrelay.messaging.topics import ensure_topics
from jobrelay.observability import configure_logging
from jobrelay.projector.rebuild import RebuildReport, rebuild
from jobrelay.projector.replay import end_offsets
from jobrelay.projector.settings import ProjectorSettings

__all__ = ["EVENTS_PER_JOB", "life", "publish", "rebuild_once"]

EVENTS_PER_JOB = 4
_JOBS_PER_BATCH = 2500


def life(job_type: str = "demo.echo") -> list[Event]:
    """One job's whole life: requested, started, 50 %, succeeded (what a busy view is made of)."""
    job = str(uuid.uuid4())
    return [
        JobRequested(job_id=job, job_type=job_type, payload='{"n": 1}', request_hash="h"),
        JobProgress(job_id=job, job_type=job_type, sequence=sequence(1, 1), kind=ProgressKind.STARTED),
        JobProgress(job_id=job, job_type=job_type, sequence=sequence(1, 2), kind=ProgressKind.PROGRESS,
                    percent=50.0, message="half way"),
        JobCompleted(job_id=job, job_type=job_type, sequence=terminal_sequence(1), status=TerminalStatus.SUCCEEDED,
                     result='{"answer": 42}'),
    ]  # fmt: skip


async def publish(kafka: KafkaSettings, topics: TopicSettings, events: int) -> float:
    """Publish about `events` events (whole lives, pre-encoded, pipelined); returns the seconds it took."""
    producer = make_producer(kafka, "bench", linger_ms=20, max_batch_size=512 * 1024)
    codec = make_codec(kafka)
    await producer.start()
    started = time.perf_counter()
    try:
        jobs = max(1, events // EVENTS_PER_JOB)
        for first in range(0, jobs, _JOBS_PER_BATCH):
            batch = [e for _ in range(min(_JOBS_PER_BATCH, jobs - first)) for e in life()]
            futures = [await producer.send(topic_for(e, topics), codec.encode(e), key=str(e.job_id).encode())
                       for e in batch]  # fmt: skip
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def rebuild_once(kafka: KafkaSettings, topics: TopicSettings, workdir: Path) -> RebuildReport:
    """A full rebuild of `topics` into a fresh view under `workdir` (not swapped in: nothing serves it)."""
    settings = ProjectorSettings(db_path=workdir / "view.sqlite")
    return await rebuild(settings, kafka, topics, swap=False)


@contextlib.contextmanager
def _kept_topics(kafka: KafkaSettings, prefix: str, partitions: int) -> Iterator[TopicSettings]:
    topics = TopicSettings(prefix=prefix, partitions=partitions)
    ensure_topics(kafka, topics)
    yield topics


def _records(kafka: KafkaSettings, topics: TopicSettings) -> int:
    """Records (and transaction markers) on the topics now: what a rebuild would read."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + 30
    while True:
        try:
            return sum(end_offsets(kafka, topics).values())
        except KafkaException:  # a topic created a moment ago may not have its leader yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # a retry interval, bounded by the deadline


async def _main(events: int, partitions: int, runs: int, keep: str | None) -> None:
    configure_logging("bench", "WARNING")
    kafka = KafkaSettings()
    kept = _kept_topics(kafka, keep, partitions) if keep else None
    with kept or bench_topics(kafka, f"bench{uuid.uuid4().hex[:8]}.", partitions) as topics:
        if keep and (present := _records(kafka, topics)) > 0:
            print(f"reusing {present} records on {keep}*")
        else:
            seconds = await publish(kafka, topics, events)
            print(f"published {events} events in {seconds:.1f}s ({events / seconds:,.0f}/s)")
        for run in range(1, runs + 1):
            with tempfile.TemporaryDirectory() as directory:
                report = await rebuild_once(kafka, topics, Path(directory))
                size = sum(p.stat().st_size for p in await asyncio.to_thread(lambda: list(Path(directory).iterdir())))
                print(f"run {run}: rebuilt {report.records} records in {report.seconds:.1f}s: "
                      f"{report.rate:,.0f} events/s, SQLite {size / 1e6:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to publish (whole job lives)")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1, help="rebuilds of the same records")
    parser.add_argument("--keep", metavar="PREFIX", help="topics to (re)use and keep, e.g. benchkeep.")
    args = parser.parse_args()
    asyncio.run(_main(args.events, args.partitions, args.runs, args.keep))
