"""A local Apache Kafka cluster of N KRaft nodes on 127.0.0.1, for failure drills (`--brokers 3`).

Each node is a `LocalKafka` (the same jars, template and life cycle as the single broker) with
its own ports and run folder under `.cache/kafka/cluster-<N>/node-<id>/`, and every node is both
broker and controller (a static quorum of N voters). Node i (1-based) listens on `port + i - 1`
and its controller on `port + 100 + i - 1`; by default 29092-29094 and 29192-29194, so the cluster
runs beside the single broker on 9092. Internal topics get min(N, 3) replicas with one fewer in
sync, so the cluster keeps taking writes, transactions and commits with one node down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jobrelay.dev.localkafka import BrokerStatus, LocalKafka, LocalKafkaError, NodeConfig, project_root

__all__ = ["CLUSTER_PORT", "ClusterStatus", "LocalKafkaCluster"]

CLUSTER_PORT = 29092
CONTROLLER_OFFSET = 100  # node i's controller listens CONTROLLER_OFFSET above its broker port
HEARTBEAT_MS, SESSION_TIMEOUT_MS = 500, 4000  # a killed node loses its leaderships after ~4 s


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What `status` reports for each node."""

    nodes: tuple[BrokerStatus, ...]

    @property
    def reachable(self) -> bool:
        """Whether every node answers."""
        return all(node.reachable for node in self.nodes)

    @property
    def ours(self) -> bool:
        """Whether jobrelay started every node (and each still runs)."""
        return all(node.pid is not None for node in self.nodes)

    def describe(self) -> str:
        """One line per node, for people."""
        return "\n".join(f"node {n}: {node.describe()}" for n, node in enumerate(self.nodes, 1))


class LocalKafkaCluster:
    """Provision, start, stop and inspect the local N-node cluster."""

    def __init__(self, brokers: int = 3, root: Path | None = None, host: str = "127.0.0.1", port: int = CLUSTER_PORT):
        if brokers < 2:
            raise ValueError("a cluster has at least 2 nodes; use LocalKafka for one")
        self.root = root or project_root()
        self.run_dir = self.root / ".cache" / "kafka" / f"cluster-{brokers}"
        controller_ports = [port + CONTROLLER_OFFSET + i for i in range(brokers)]
        voters = ",".join(f"{i}@{host}:{p}" for i, p in enumerate(controller_ports, 1))
        replicas = min(brokers, 3)
        self.nodes = tuple(
            LocalKafka(
                self.root,
                host,
                port + i,
                controller_ports[i],
                node=NodeConfig(
                    node_id=i + 1,
                    voters=voters,
                    replicas=replicas,
                    min_isr=replicas - 1,
                    heartbeat_ms=HEARTBEAT_MS,
                    session_timeout_ms=SESSION_TIMEOUT_MS,
                    cluster_id_file=self.run_dir / "cluster-id",
                ),
                run_dir=self.run_dir / f"node-{i + 1}",
            )
            for i in range(brokers)
        )

    @property
    def bootstrap(self) -> str:
        """The comma-separated host:port list of every node (KAFKA_BOOTSTRAP_SERVERS)."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replicas(self) -> int:
        """The replication factor topics on this cluster should have (3 for 3 nodes or more)."""
        return self.nodes[0].node.replicas

    @property
    def min_insync_replicas(self) -> int:
        """The min.insync.replicas topics on this cluster should have (2 of 3)."""
        return self.nodes[0].node.min_isr

    def node(self, node_id: int) -> LocalKafka:
        """The node with this broker id (1-based)."""
        return self.nodes[node_id - 1]

    def status(self) -> ClusterStatus:
        """Whether each node answers, and whether jobrelay started it."""
        return ClusterStatus(tuple(node.status() for node in self.nodes))

    def up(self, timeout: float = 120.0) -> bool:
        """Start every node that is not running, then wait until all N brokers are registered.

        True when this call started a node. The nodes start together: none answers before a
        majority of the controllers is up.
        """
        status = self.status()
        foreign = [n.bootstrap for n, s in zip(self.nodes, status.nodes, strict=True) if s.reachable and s.pid is None]
        if foreign and len(foreign) < len(self.nodes):
            raise LocalKafkaError(f"ports taken by processes jobrelay did not start: {', '.join(foreign)}")
        todo = [n for n, s in zip(self.nodes, status.nodes, strict=True) if s.pid is None and not s.reachable]
        spawned: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for node in todo:
                node.prepare()
                spawned[node.node.node_id] = node.spawn()
            self.wait_ready(timeout, spawned)
        except LocalKafkaError:
            self.down()
            raise
        return bool(todo)

    def wait_ready(self, timeout: float, spawned: Mapping[int, subprocess.Popen[bytes]] | None = None) -> None:
        """Return once every node answers and the metadata lists all N brokers.

        `spawned`: the processes just started, by node id, so one that exits fails at once.
        """
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(deadline - time.monotonic(), 1.0), (spawned or {}).get(node.node.node_id))
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            if len(admin.list_topics(timeout=5).brokers) == len(self.nodes):
                return
            time.sleep(0.2)
        raise LocalKafkaError(f"not all {len(self.nodes)} brokers registered within {timeout:.0f}s")

    def down(self, grace: float = 30.0) -> bool:
        """Stop the nodes this project started (by PID); True when one was stopped."""
        # SIGTERM to all first: the last node's controlled shutdown would wait for a quorum in vain.
        for node in self.nodes:
            if (pid := node.running_pid()) is not None:
                os.kill(pid, signal.SIGTERM)
        stopped = [node.down(grace) for node in self.nodes]  # every node, not up to the first stopped
        return any(stopped)
