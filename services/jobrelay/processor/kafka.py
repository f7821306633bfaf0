"""The processor's Kafka clients (confluent-kafka): one group consumer, one transactional producer.

librdkafka does the I/O on its own threads; the blocking calls are made off the event loop: the
consumer's `consume()` (and so its rebalance callbacks) on a thread of its own, the producer's
transaction calls on another. Fencing is KIP-447's: every transaction commits the input offsets
with the consumer's group metadata (`send_offsets_to_transaction(…, consumer_group_metadata())`),
so a zombie that lost its partitions in a rebalance cannot commit for them any more, and a new
owner's committed-offset read waits for its predecessor's open transaction to end
(`isolation.level=read_committed` makes librdkafka ask for stable offsets). One producer per
process, so one transaction carries the outputs of every partition.

The transactional id is `<prefix>.<group>.<host>.<slot>`, the slot being the lowest number whose
lock file this process could take: a processor restarted on the same host reuses its
predecessor's id, and its `init_transactions` aborts the dead process's open transaction at once
instead of after the transaction timeout.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from jobrelay.config.settings import KafkaSettings
from jobrelay.messaging.confluent import consumer_config, producer_config
from jobrelay.processor.settings import ProcessorSettings

__all__ = [
    "Aborted",
    "Output",
    "TransactionalWriter",
    "lock_slot",
    "make_group_consumer",
    "make_reader",
    "transactional_id",
]


@dataclass(frozen=True, slots=True)
class Output:
    """An encoded event waiting for the next transaction, bound for the job's partition."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def make_group_consumer(kafka: KafkaSettings, settings: ProcessorSettings) -> Consumer:
    """The group member on job-requested (cooperative rebalancing: only moved partitions stop)."""
    config = consumer_config(
        kafka,
        "processor",
        **{
            "group.id": settings.group_id,
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(100, settings.session_timeout_ms // 5),
            "partition.assignment.strategy": "cooperative-sticky",
            "queued.max.messages.kbytes": 16384,
        },
    )
    return Consumer(config)


def make_reader(kafka: KafkaSettings) -> Consumer:
    """A consumer without a group (never commits) that reads job-completed on takeover."""
    config = consumer_config(
        kafka, "processor-history", **{"group.id": "jobrelay-unused", "enable.partition.eof": True}
    )
    return Consumer(config)


def lock_slot(settings: ProcessorSettings) -> tuple[int, IO[bytes]]:
    """The lowest free slot on this host for this group, and its held lock file."""
    directory = Path(tempfile.gettempdir()) / "jobrelay-processor-slots"
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{settings.transactional_id_prefix}.{settings.group_id}".replace("/", "_")
    for slot in range(10_000):
        handle = (directory / f"{name}.{slot}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise RuntimeError(f"no free transactional slot in {directory}")


def transactional_id(settings: ProcessorSettings, slot: int) -> str:
    """The process's transactional id: stable for a slot on a host, unique among running processes."""
    return f"{settings.transactional_id_prefix}.{settings.group_id}.{socket.gethostname()}.{slot}"


class Aborted(Exception):
    """A transaction was rolled back; nothing of it is visible to read_committed readers."""


class TransactionalWriter:
    """Writes batches of outputs and input offsets in one transaction each (blocking; call off the loop)."""

    def __init__(
        self, kafka: KafkaSettings, settings: ProcessorSettings, txn_id: str, group_metadata: Callable[[], object]
    ) -> None:
        self.group_metadata = group_metadata  # the consumer's, as of its last fetch or rebalance
        self.timeout = max(10.0, kafka.request_timeout_ms / 1000)
        config = producer_config(
            kafka,
            f"processor-{os.getpid()}",
            **{
                "transactional.id": txn_id,
                "transaction.timeout.ms": settings.transaction_timeout_ms,
                "linger.ms": 0,  # a transaction is flushed by its commit; nothing gains from waiting
                # A transaction that begins while the previous one's markers are still being written is
                # answered CONCURRENT_TRANSACTIONS and retried after this backoff: librdkafka's default
                # (100 ms) made every back-to-back transaction take ~100 ms here instead of 4-20 ms.
                "retry.backoff.ms": 2,
                "retry.backoff.max.ms": 20,
                "queue.buffering.max.messages": 1_000_000,
            },
        )
        self.producer = Producer(config)

    def start(self) -> None:
        """Register the transactional id (fences and aborts a predecessor with the same id)."""
        self.producer.init_transactions(self.timeout * 3)

    def write(self, outputs: list[Output], offsets: list[TopicPartition]) -> None:
        """One transaction with `outputs` and `offsets`; raises `Aborted` when it was rolled back.

        Nothing is retried here: after an abort (a rebalance moved partitions, a coordinator moved, a
        timeout) the caller decides again what still belongs in a transaction, so outputs of a
        partition this process lost meanwhile are never committed by a retry.
        """
        try:
            self._transaction(outputs, offsets)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal():
                raise
            try:
                self.producer.abort_transaction(self.timeout)
            except KafkaException as failed:
                if failed.args[0].fatal():
                    raise
            raise Aborted(str(error)) from exc

    def _transaction(self, outputs: list[Output], offsets: list[TopicPartition]) -> None:
        producer = self.producer
        producer.begin_transaction()
        for output in outputs:
            while True:
                try:
                    # the stub's header element type is wider than ours, and lists are invariant
                    headers: Any = output.headers
                    producer.produce(output.topic, output.value, output.key, output.partition, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)  # the local queue is full: let librdkafka send some
        if offsets:
            producer.send_offsets_to_transaction(offsets, self.group_metadata(), self.timeout)
        producer.commit_transaction(self.timeout)

    def close(self) -> None:
        """Flush what librdkafka still holds (nothing, between transactions)."""
        self.producer.flush(self.timeout)
