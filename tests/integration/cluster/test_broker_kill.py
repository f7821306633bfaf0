"""kill -9 of a broker under load: nothing acknowledged is lost, nothing runs twice, 503s end.

An intake, a processor and a projector (processes, as `make run` starts them) run on the local
3-node cluster, on topics with 3 replicas and min.insync.replicas=2. A steady stream of
`POST /v1/jobs` goes in over HTTP; mid-run the broker leading the most partitions of the job
topics is killed with SIGKILL. Then every 202 must be on job-requested and reach exactly one
JobCompleted (read_committed), the 503s (while leaders move) must stop before the run ends, and
the killed broker, restarted, must be back in the ISR of its partitions.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.dev.kafkacluster import LocalKafkaCluster
from jobrelay.dev.stack import Stack
from jobrelay.jobs.events import JobCompleted, JobRequested, TerminalStatus
from jobrelay.messaging.codec import AvroCodec
from tests.integration.intakeserver import wait_until
from tests.integration.kafkautil import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.slow]
RATE, SECONDS, KILL_AT = 40, 20.0, 6.0  # jobs/s, length of the run, when the broker dies (s)
PARTITIONS = 6


@dataclass(frozen=True)
class ClusterStack:
    """The services on the cluster, and how to reach them."""

    stack: Stack
    topics: TopicSettings
    kafka: KafkaSettings
    auth: dict[str, str]

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return next(s.url for s in self.stack.services if s.name == name)


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it was sent and answered (s since the start), and how."""

    sent: float
    answered: float
    status: int
    job_id: str | None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def services(kafka_cluster: LocalKafkaCluster, tmp_path: Path) -> Iterator[ClusterStack]:
    """An intake, a processor and a projector on the cluster, on fresh replicated topics."""
    run = uuid.uuid4().hex[:8]
    ports = {name: _free_port() for name in ("intake", "projector", "processor")}
    topics = TopicSettings(
        prefix=f"cl{run}.",
        partitions=PARTITIONS,
        replication_factor=kafka_cluster.replicas,
        min_insync_replicas=kafka_cluster.min_insync_replicas,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOBRELAY_", "KAFKA_"))},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap,
        "JOBRELAY_TOPICS_PREFIX": topics.prefix,
        "JOBRELAY_TOPICS_PARTITIONS": str(PARTITIONS),
        "JOBRELAY_TOPICS_REPLICATION_FACTOR": str(topics.replication_factor),
        "JOBRELAY_TOPICS_MIN_INSYNC_REPLICAS": str(topics.min_insync_replicas),
        "JOBRELAY_LOG_FORMAT": "json",
        "JOBRELAY_INTAKE_STATUS_BASE_URL": f"http://127.0.0.1:{ports['projector']}",
        "JOBRELAY_INTAKE_PROCESSOR_GROUP_ID": f"cl{run}-processor",
        "JOBRELAY_PROCESSOR_GROUP_ID": f"cl{run}-processor",
        "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"cl{run}",
        "JOBRELAY_PROCESSOR_BACKOFF_BASE_S": "0.1",
        "JOBRELAY_PROCESSOR_HEARTBEAT_INTERVAL_S": "1",
    }
    stack = Stack(env=env, run_dir=tmp_path / "stack", ports=ports, only=ports)
    stack.up(timeout=120)
    try:
        auth = {"Authorization": f"Bearer {stack.api_key()}"}
        yield ClusterStack(stack, topics, KafkaSettings(bootstrap_servers=kafka_cluster.bootstrap), auth)
    finally:
        stack.stop()


def _leaders(admin: AdminClient, topics: TopicSettings) -> dict[tuple[str, int], int]:
    """(topic, partition) -> leader broker id (-1: none) of the four job topics."""
    metadata = admin.list_topics(timeout=10)
    return {(t, p): m.leader for t in topics.all() for p, m in metadata.topics[t].partitions.items()}


def _not_in_isr(admin: AdminClient, topics: TopicSettings, broker: int) -> list[tuple[str, int]]:
    metadata = admin.list_topics(timeout=10)
    return [(t, p) for t in topics.all() for p, m in metadata.topics[t].partitions.items() if broker not in m.isrs]


async def _post(http: httpx.AsyncClient, n: int, start: float, auth: dict[str, str]) -> Answer:
    await asyncio.sleep(max(0.0, start + n / RATE - time.monotonic()))  # open loop: a steady rate
    sent = time.monotonic() - start
    headers = auth | {"Idempotency-Key": f"load-{n}"}
    response = await http.post("/v1/jobs", json={"type": "demo.echo", "payload": {"n": n}}, headers=headers)
    job_id = response.json()["id"] if response.status_code == 202 else None
    return Answer(sent, time.monotonic() - start, response.status_code, job_id)


async def _watch_leaders(admin: AdminClient, topics: TopicSettings, dead: int, start: float) -> float:
    """Seconds since the start when no partition of the job topics is led by `dead` any more."""
    while True:
        leaders = await asyncio.to_thread(_leaders, admin, topics)
        if all(leader not in (dead, -1) for leader in leaders.values()):
            return time.monotonic() - start
        await asyncio.sleep(0.1)  # the polling interval of the condition


async def _load_with_a_kill(
    services: ClusterStack, cluster: LocalKafkaCluster, admin: AdminClient, victim: int
) -> tuple[list[Answer], float, float]:
    """Run the load, kill `victim` at KILL_AT; the answers, when it died and when its leaderships moved."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=60, limits=limits) as http:
        start = time.monotonic()
        posts = [asyncio.create_task(_post(http, n, start, services.auth)) for n in range(int(RATE * SECONDS))]
        await asyncio.sleep(KILL_AT)  # the load runs meanwhile; the kill is what this waits for
        await asyncio.to_thread(cluster.node(victim).kill)
        killed_at = time.monotonic() - start
        moved_at = await asyncio.wait_for(_watch_leaders(admin, services.topics, victim, start), 60)
        answers = await asyncio.gather(*posts)
    return answers, killed_at, moved_at


async def _completed(services: ClusterStack, accepted: set[str]) -> list[JobCompleted]:
    """Every JobCompleted on job-completed once all `accepted` jobs have one (60 s at most)."""
    codec, deadline = AvroCodec(), time.monotonic() + 60
    while True:
        records = await read_all(services.kafka, services.topics.completed, deadline=30)
        outcomes = [e for e in (codec.decode(r.value) for r in records) if isinstance(e, JobCompleted)]
        missing = accepted - {e.job_id for e in outcomes}
        if not missing or time.monotonic() > deadline:
            assert not missing, f"{len(missing)} accepted jobs never completed, e.g. {sorted(missing)[:3]}"
            return outcomes
        await asyncio.sleep(0.5)  # the polling interval of the condition


async def _requested(services: ClusterStack) -> dict[str, int]:
    """job id -> partition of every JobRequested on job-requested."""
    codec = AvroCodec()
    records = await read_all(services.kafka, services.topics.requested, deadline=30)
    return {e.job_id: r.partition for r in records if isinstance(e := codec.decode(r.value), JobRequested)}


def _in_view(services: ClusterStack, accepted: set[str]) -> bool:
    """Whether the projector lists every accepted job as succeeded."""
    seen: set[str] = set()
    params: dict[str, str | int] = {"status": "succeeded", "limit": 1000}
    with httpx.Client(base_url=services.url("projector"), headers=services.auth, timeout=30) as http:
        while True:
            page = http.get("/v1/jobs", params=params).json()
            seen |= {item["id"] for item in page["items"]}
            if not page["next_cursor"]:
                return accepted <= seen
            params["cursor"] = page["next_cursor"]


@pytest.mark.timeout(300)
async def test_kill_9_of_the_busiest_leader_loses_nothing_and_503s_stop_once_leaders_move(
    kafka_cluster: LocalKafkaCluster, services: ClusterStack
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap, "log_level": 0})
    leaders = _leaders(admin, services.topics)
    victim, led = Counter(leaders.values()).most_common(1)[0]
    lost_leader = {p for (t, p), leader in leaders.items() if t == services.topics.requested and leader == victim}

    answers, killed_at, moved_at = await _load_with_a_kill(services, kafka_cluster, admin, victim)

    assert {a.status for a in answers} <= {202, 503}, Counter(a.status for a in answers)
    accepted = {a.job_id for a in answers if a.status == 202 and a.job_id}
    refused = [a for a in answers if a.status == 503]
    requested = await _requested(services)
    assert accepted <= set(requested), f"202s without a JobRequested: {sorted(accepted - set(requested))[:3]}"
    outcomes = await _completed(services, accepted)
    duplicates = sum(count - 1 for count in Counter(e.job_id for e in outcomes).values())
    assert duplicates == 0, "a job completed twice"
    assert all(e.status is TerminalStatus.SUCCEEDED for e in outcomes if e.job_id in accepted)
    if refused:
        last_503 = max(a.answered for a in refused)
        later = [a for a in answers if a.sent > last_503]
        assert len(later) >= RATE, f"503s went on until {last_503:.1f}s of a {SECONDS:.0f}s run"
        assert all(a.status == 202 for a in later), "after the last 503 every request got a 202"
    wait_until(lambda: _in_view(services, accepted), 60, "every accepted job succeeded in the projector's view")

    affected = [
        a.answered
        for a in answers
        if a.status == 202 and a.sent > killed_at and requested[a.job_id or ""] in lost_leader
    ]
    restarted = time.monotonic()
    kafka_cluster.node(victim).up(timeout=120)
    wait_until(lambda: not _not_in_isr(admin, services.topics, victim), 90, f"broker {victim} back in every ISR")
    rejoin_s = time.monotonic() - restarted

    print(
        f"\nbroker-kill: killed broker {victim} (leader of {led} of {len(leaders)} partitions) at {killed_at:.1f}s;"
        f" jobs sent {len(answers)}, 202s {len(accepted)}, 503s {len(refused)},"
        f" outcomes {len({e.job_id for e in outcomes})} (of 202'd jobs {len(accepted)}), duplicates {duplicates};"
        f" leaders moved after {moved_at - killed_at:.1f}s,"
        f" first 202 on a partition it led {min(affected, default=float('nan')) - killed_at:.1f}s after the kill,"
        f" last 503 {max((a.answered for a in refused), default=killed_at) - killed_at:.1f}s after it;"
        f" back in every ISR {rejoin_s:.1f}s after its restart"
    )
