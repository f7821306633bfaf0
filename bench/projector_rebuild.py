"""Events/s of a full projector rebuild: publish N events (jobs of 4 events each), then rebuild the view.

Run: `python -m bench.projector_rebuild [--events 1000000]` with a broker on KAFKA_BOOTSTRAP_SERVERS
(default 127.0.0.1:9092). The topics it creates (unique prefix) are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from tests.integration.projector.conftest import life

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_codec, make_producer, topic_for
from jobrelay.messaging.topics import admin_client, ensure_topics
from jobrelay.observability import configure_logging
from jobrelay.projector.rebuild import rebuild
from jobrelay.projector.settings import ProjectorSettings


async def publish(kafka: KafkaSettings, topics: TopicSettings, events: int) -> float:
    """Publish `events` events (pre-encoded, pipelined); returns the seconds it took."""
    producer = make_producer(kafka, "bench", linger_ms=20, max_batch_size=512 * 1024)
    codec = make_codec(kafka)
    await producer.start()
    started = time.perf_counter()
    try:
        for _ in range(events // 4 // 2500):
            batch = [e for _ in range(2500) for e in life()]
            futures = [await producer.send(topic_for(e, topics), codec.encode(e), key=str(e.job_id).encode())
                       for e in batch]  # fmt: skip
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def main(events: int, partitions: int) -> None:
    configure_logging("bench", "WARNING")
    kafka = KafkaSettings()
    topics = TopicSettings(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    ensure_topics(kafka, topics)
    try:
        seconds = await publish(kafka, topics, events)
        print(f"published {events} events in {seconds:.1f}s ({events / seconds:,.0f}/s)")
        with tempfile.TemporaryDirectory() as directory:
            settings = ProjectorSettings(db_path=Path(directory) / "view.sqlite")
            report = await rebuild(settings, kafka, topics)
            size = sum(p.stat().st_size for p in await asyncio.to_thread(lambda: list(Path(directory).iterdir())))
            print(f"rebuilt {report.records} records in {report.seconds:.1f}s: {report.rate:,.0f} events/s, "
                  f"SQLite {size / 1e6:.0f} MB")  # fmt: skip
    finally:
        admin_client(kafka).delete_topics(list(topics.all()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.partitions))
