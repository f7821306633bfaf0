"""`jobrelay topics ensure`: the four co-partitioned topics, created once, checked every time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from jobrelay.config.settings import KafkaSettings, TopicSettings

__all__ = ["TopicMismatchError", "TopicReport", "admin_client", "ensure_topics"]


class TopicMismatchError(RuntimeError):
    """Existing topics do not have the partition count co-partitioning needs."""


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What `ensure_topics` found and did."""

    created: tuple[str, ...]
    existing: tuple[str, ...]
    partitions: int


def admin_client(kafka: KafkaSettings) -> AdminClient:
    """A confluent-kafka AdminClient for the configured cluster."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        config |= {
            "sasl.mechanism": kafka.sasl_mechanism,
            "sasl.username": kafka.sasl_username,
            "sasl.password": kafka.sasl_password,
        }
    return AdminClient(config)


def _partition_counts(admin: AdminClient, names: tuple[str, ...], timeout: float) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(metadata.topics[name].partitions) for name in names if name in metadata.topics}


def _check(existing: dict[str, int], wanted: int) -> None:
    wrong = {name: count for name, count in existing.items() if count != wanted}
    if not wrong:
        return
    found = ", ".join(f"{name} has {count}" for name, count in sorted(existing.items()))
    counts = set(existing.values())
    target = max(*counts, wanted)
    fix = (
        f"set JOBRELAY_TOPICS_PARTITIONS={counts.pop()} (the count the existing topics share)"
        if len(counts) == 1
        else "make them equal"
    )
    raise TopicMismatchError(
        f"jobrelay's topics must all have the same partition count, because every event of a job "
        f"must land on the same partition number in each (co-partitioning by job id); "
        f"{wanted} is configured, but {found}. To fix it, {fix}, or raise every topic to {target} "
        f"partitions with kafka-topics.sh --alter --topic NAME --partitions {target} while nothing "
        f"is producing (adding partitions moves keys: let in-flight jobs finish first). "
        f"Partitions can never be removed."
    )


def _wait_for_leaders(admin: AdminClient, names: tuple[str, ...], timeout: float) -> None:
    """Return once every partition of `names` has a leader, so the first produce succeeds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout)
        topics = [metadata.topics.get(name) for name in names]
        if all(t is not None and t.partitions and all(p.leader >= 0 for p in t.partitions.values()) for t in topics):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topics {', '.join(names)} have no leaders after {timeout:.0f}s")


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, timeout: float = 30.0) -> TopicReport:
    """Create the missing topics; refuse when existing ones have another partition count. Idempotent."""
    admin = admin_client(kafka)
    names = topics.all()
    existing = _partition_counts(admin, names, timeout)
    _check(existing, topics.partitions)
    missing = [name for name in names if name not in existing]
    new = [
        NewTopic(
            name,
            topics.partitions,
            topics.replication_factor,
            config={
                "min.insync.replicas": str(topics.min_insync_replicas),
                "retention.ms": str(topics.dlq_retention_ms if name == topics.dlq else topics.retention_ms),
            },
        )
        for name in missing
    ]
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items() if new else ():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:  # another `ensure` won the race: fine, checked below
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(admin, names, timeout)
    _check(_partition_counts(admin, names, timeout), topics.partitions)
    return TopicReport(tuple(created), tuple(n for n in names if n not in created), topics.partitions)
