"""Which partition a key lands on, computed the way the producers' default partitioner does.

Every record of a job is keyed by its id, and aiokafka's DefaultPartitioner (like the Java
client's) sends a key to murmur2(key) & 0x7fffffff modulo the partition count. Knowing it lets
a reader look at exactly one partition per topic, e.g. to catch up before answering 404.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


def partition_for(key: bytes | str, partitions: int) -> int:
    """The partition (0 … partitions-1) the default partitioner picks for `key`."""
    if partitions < 1:
        raise ValueError(f"partition count must be positive, got {partitions}")
    data = key.encode() if isinstance(key, str) else key
    return int(murmur2(data) & 0x7FFFFFFF) % partitions
