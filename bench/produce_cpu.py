"""Client CPU per produced message on the real broker: aiokafka vs confluent-kafka, and the codec.

Process CPU time (all threads, so librdkafka's own threads count) divided by messages, with
acks=all and idempotence on both clients, the same ~180-byte JobRequested value, each run
twice. Run: `python -m bench.produce_cpu [--messages N]` with a broker on KAFKA_BOOTSTRAP_SERVERS
(default 127.0.0.1:9092; `jobrelay dev kafka up` starts one). `python -m bench` runs the same
measurements as its "client-cpu" scenario (bench/scenarios/client_cpu.py).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from bench.topics import bench_topics, event_value
from jobrelay.config.settings import KafkaSettings
from jobrelay.messaging.clients import make_producer
from jobrelay.messaging.codec import AvroCodec

__all__ = ["CODEC_OPS", "aiokafka_produce", "codec_ops", "confluent_produce", "main", "measure_cpu"]

CODEC_OPS = 100_000  # encodes or decodes per codec measurement


def measure_cpu(run: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) spent in `run`."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def aiokafka_produce(kafka: KafkaSettings, topic: str, value: bytes, count: int) -> None:
    """Produce `count` records with aiokafka and wait for every acknowledgement."""

    async def main() -> None:
        producer = make_producer(kafka, "bench", linger_ms=5, max_batch_size=262_144)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=str(i).encode()) for i in range(count)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(main())


def confluent_produce(kafka: KafkaSettings, topic: str, value: bytes, count: int) -> None:
    """Produce `count` records with confluent-kafka and flush."""
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)


def codec_ops(value: bytes) -> dict[str, Callable[[], None]]:
    """CODEC_OPS encodes of a JobRequested, and CODEC_OPS decodes of `value`, by name."""
    codec = AvroCodec()
    event = codec.decode(value)

    def encode_n() -> None:
        for _ in range(CODEC_OPS):
            codec.encode(event)

    def decode_n() -> None:
        for _ in range(CODEC_OPS):
            codec.decode(value)

    return {"codec encode (fastavro)": encode_n, "codec decode (fastavro)": decode_n}


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    kafka = KafkaSettings()
    value = event_value()
    table = Table(title=f"client CPU per message ({args.messages:,} messages, {len(value)}-byte value, acks=all)")
    for column in ("what", "run", "CPU µs/msg", "wall msgs/s"):
        table.add_column(column, justify="right" if column != "what" else "left")
    with bench_topics(kafka, f"bench-{uuid.uuid4().hex[:8]}.cpu.", partitions=3) as topics:
        for name, produce in (("aiokafka produce", aiokafka_produce), ("confluent-kafka produce", confluent_produce)):
            for run in (1, 2):
                work = functools.partial(produce, kafka, topics.requested, value, args.messages)
                cpu, wall = measure_cpu(work)
                table.add_row(name, str(run), f"{cpu / args.messages * 1e6:.1f}", f"{args.messages / wall:,.0f}")
    for run in (1, 2):
        for name, op in codec_ops(value).items():
            table.add_row(name, str(run), f"{measure_cpu(op)[0] / CODEC_OPS * 1e6:.1f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
