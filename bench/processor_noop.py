"""No-op jobs per second of one processor process (`demo.echo`), on the real broker.

Publishes N `demo.echo` requests to fresh topics (12 partitions, like the default), then starts
one `python -m jobrelay.processor` process with its default settings and reads job-completed
(read_committed) until all N outcomes are there. The rate is N over the span between the first and
the last JobCompleted's broker timestamp, so process start-up and group join are not counted;
the wall time from process start is printed too. Run: `python -m bench.processor_noop [--jobs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

from aiokafka import ConsumerRecord
from rich.console import Console

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.clients import make_consumer, make_producer, topic_partitions
from jobrelay.messaging.codec import AvroCodec
from jobrelay.messaging.topics import ensure_topics


async def publish(kafka: KafkaSettings, topics: TopicSettings, count: int) -> None:
    """Publish `count` demo.echo requests, keyed by job id, and wait for every acknowledgement."""
    codec, producer = AvroCodec(), make_producer(kafka, "bench", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for n in range(count):
            job = JobRequested(job_id=str(uuid.uuid4()), job_type="demo.echo", payload=f'{{"n": {n}}}')
            futures.append(await producer.send(topics.requested, codec.encode(job), key=job.job_id.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def completions(
    kafka: KafkaSettings, topic: str, count: int, deadline: float
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topic` from the start until `count` records arrived (or the deadline passed)."""
    consumer = make_consumer(kafka, "bench-reader")
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        end = time.monotonic() + deadline
        while len(records) < count and time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(r for rs in batch.values() for r in rs)
        return records
    finally:
        await consumer.stop()


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    kafka, topics = KafkaSettings(), TopicSettings(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=12)
    ensure_topics(kafka, topics)
    asyncio.run(publish(kafka, topics, args.jobs))
    env = os.environ | {"JOBRELAY_TOPICS_PREFIX": topics.prefix, "JOBRELAY_TOPICS_PARTITIONS": "12",
                        "JOBRELAY_PROCESSOR_PORT": "0", "JOBRELAY_PROCESSOR_GROUP_ID": f"{topics.prefix}processor",
                        "JOBRELAY_LOG_LEVEL": "WARNING",
                        "JOBRELAY_PROCESSOR_HANDLER_MODULES": "jobrelay.processor.demo"}  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "jobrelay.processor"], env=env)
    try:
        records = asyncio.run(completions(kafka, topics.completed, args.jobs, deadline=600))
        wall = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    stamps = sorted(r.timestamp for r in records)
    span = (stamps[-1] - stamps[0]) / 1000
    console = Console()
    console.print(f"{len(records)} of {args.jobs} jobs completed; {wall:.1f}s wall from process start")
    console.print(
        f"[bold]{(len(records) - 1) / span:.0f} no-op jobs/s[/bold] (first to last JobCompleted: {span:.2f}s)"
    )


if __name__ == "__main__":
    main()
