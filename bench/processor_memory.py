"""The processor's memory over a long run: RSS at the Nth completed job, for a few N.

`publish_noops` produces N `bench.noop` JobRequested with confluent-kafka (acks=all, idempotent,
each a fresh job id) from a thread, as fast as the broker takes them; `watch_rss` reads
job-completed (read_committed) from the start in another thread, counts the records and, when
the count reaches each mark, samples the resident set size of the processor (with any children).
Nothing here decodes what it counts: every record of job-completed is one job's outcome.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.jobrelay_kit import NOOP_TYPE
from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.clients import make_codec
from jobrelay.messaging.confluent import consumer_config, producer_config

__all__ = ["RssSample", "RssWatch", "publish_noops", "rss_bytes", "watch_rss"]

_POLL_S = 0.2


def publish_noops(kafka: KafkaSettings, topics: TopicSettings, count: int) -> float:
    """Produce `count` no-op requests, keyed by job id, wait for every ack; the seconds it took."""
    # One request encoded once, each job's fresh id spliced in (a UUID is always 36 characters, so
    # the record stays valid): encoding each one cost ~100 s of the bench's CPU per 500,000 jobs,
    # taken from the processor it measures.
    template = JobRequested(job_id=str(uuid.uuid4()), job_type=NOOP_TYPE, payload='{"n": 1}')
    encoded, marker = make_codec(kafka).encode(template), template.job_id.encode()
    if encoded.count(marker) != 1:
        raise RuntimeError("the encoded request does not hold its job id exactly once")
    producer = Producer(producer_config(kafka, "bench-memory", **{"linger.ms": 20, "batch.size": 512 * 1024}))
    started = time.perf_counter()
    for n in range(count):
        key = str(uuid.uuid4()).encode()
        value = encoded.replace(marker, key)
        while True:
            try:
                producer.produce(topics.requested, value, key=key)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) > 0:
        raise RuntimeError("not every request was acknowledged within 120 s of the last produce")
    return time.perf_counter() - started


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid` and its descendants, in bytes."""
    import psutil  # type: ignore[import-untyped]  # bench extra, no stubs

    root = psutil.Process(pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return int(total)


@dataclass(frozen=True, slots=True)
class RssSample:
    """The processor's RSS when the count of completed jobs reached `jobs`, and when."""

    jobs: int
    rss: int
    at: float  # time.monotonic()


@dataclass(slots=True)
class RssWatch:
    """What `watch_rss` saw: a sample per mark reached, and the count at the end."""

    samples: list[RssSample] = field(default_factory=list)
    completed: int = 0

    def rate_between(self, first: int, last: int) -> float | None:
        """Jobs/s between the samples at marks `first` and `last` (None unless both were reached)."""
        by_jobs = {s.jobs: s for s in self.samples}
        if first not in by_jobs or last not in by_jobs or by_jobs[last].at <= by_jobs[first].at:
            return None
        return (last - first) / (by_jobs[last].at - by_jobs[first].at)


def _consumer(kafka: KafkaSettings, topic: str) -> Consumer:
    consumer = Consumer(consumer_config(kafka, "bench-memory-watch", **{"group.id": f"bench-{uuid.uuid4().hex}"}))
    metadata = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, p, -2) for p in metadata.partitions])  # -2: the beginning
    return consumer


def watch_rss(
    kafka: KafkaSettings,
    topic: str,
    marks: Sequence[int],
    sample: Callable[[], int],
    deadline_s: float,
    stop: threading.Event | None = None,
) -> RssWatch:
    """Count `topic`'s records from the start; `sample()` RSS at each mark; stop at the last mark,
    after `deadline_s` seconds, or when `stop` is set (blocking: call it in a thread)."""
    watch, pending = RssWatch(), sorted(marks)
    consumer = _consumer(kafka, topic)
    end = time.monotonic() + deadline_s
    try:
        while pending and time.monotonic() < end and not (stop and stop.is_set()):
            records = consumer.consume(num_messages=10_000, timeout=_POLL_S)
            watch.completed += sum(1 for r in records if r.error() is None)
            while pending and watch.completed >= pending[0]:
                watch.samples.append(RssSample(pending.pop(0), sample(), time.monotonic()))
    finally:
        consumer.close()
    return watch
