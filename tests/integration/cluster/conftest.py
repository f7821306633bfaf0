"""The local 3-node KRaft cluster for the broker-failure tests, once per session.

The cluster is the project's own (`jobrelay dev kafka up --brokers 3`, ports 29092-29094, or the
base port JOBRELAY_TEST_CLUSTER_PORT names): reused when this checkout started it already,
started here otherwise and stopped at the end if this session started it. The tests kill and
restart its nodes by PID, so a cluster on those ports that this checkout did not start fails the
tests instead of being touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jobrelay.dev.kafkacluster import CLUSTER_PORT, LocalKafkaCluster


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalKafkaCluster]:
    """A running local 3-node cluster whose nodes this checkout may kill and restart."""
    cluster = LocalKafkaCluster(3, port=int(os.environ.get("JOBRELAY_TEST_CLUSTER_PORT", CLUSTER_PORT)))
    status = cluster.status()
    if any(node.reachable and node.pid is None for node in status.nodes):
        pytest.fail(f"a Kafka not started by this checkout answers on {cluster.bootstrap}: {status.describe()}")
    started = cluster.up(timeout=180)
    try:
        yield cluster
    finally:
        if started:
            cluster.down()
