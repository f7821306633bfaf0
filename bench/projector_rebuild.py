"""Events/s of a full projector rebuild: publish N events (jobs of 4 events each), then rebuild the view.

Run: `python -m bench.projector_rebuild [--events 1000000]` with a broker on KAFKA_BOOTSTRAP_SERVERS
(default 127.0.0.1:9092). The topics it creates (unique prefix) are deleted at the end. The
"projector-rebuild" scenario of `python -m bench` uses `publish` and `rebuild_once` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from bench.topics import bench_topics
from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import Event, JobCompleted, JobProgress, JobRequested, ProgressKind, TerminalStatus
from jobrelay.jobs.sequence import sequence, terminal_sequence
from jobrelay.messaging.clients import make_codec, make_producer, topic_for
from jobrelay.observability import configure_logging
from jobrelay.projector.rebuild import RebuildReport, rebuild
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


async def _main(events: int, partitions: int) -> None:
    configure_logging("bench", "WARNING")
    kafka = KafkaSettings()
    with bench_topics(kafka, f"bench{uuid.uuid4().hex[:8]}.", partitions) as topics:
        seconds = await publish(kafka, topics, events)
        print(f"published {events} events in {seconds:.1f}s ({events / seconds:,.0f}/s)")
        with tempfile.TemporaryDirectory() as directory:
            report = await rebuild_once(kafka, topics, Path(directory))
            size = sum(p.stat().st_size for p in await asyncio.to_thread(lambda: list(Path(directory).iterdir())))
            print(f"rebuilt {report.records} records in {report.seconds:.1f}s: {report.rate:,.0f} events/s, "
                  f"SQLite {size / 1e6:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(_main(args.events, args.partitions))
