"""The whole system as `make run` starts it: four service processes on one real broker.

The stack is private to the test session: its own topic prefix, consumer groups, state folder
and free ports, so it never meets a developer's running `make run`.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.dev.jaeger import JaegerPorts, LocalJaeger
from jobrelay.dev.stack import Stack
from jobrelay.sdk import AsyncJobClient
from tests.e2e.collector import Collector, collecting

MAX_WAIT_S = 8  # the stack intake's cap on `Prefer: wait=N`


@dataclass(frozen=True)
class RunningStack:
    """Where the test stack listens and what it is configured with."""

    stack: Stack
    env: dict[str, str]
    topics: TopicSettings
    kafka: KafkaSettings
    traces: Collector
    jaeger: LocalJaeger | None
    api_key: str  # tenant `dev`'s, as `make run` makes it

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return next(s.url for s in self.stack.services if s.name == name)

    def client(self) -> AsyncJobClient:
        """An SDK client of the stack, with its API key."""
        return AsyncJobClient(self.url("intake"), status_base_url=self.url("projector"), api_key=self.api_key)

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of the stack's API key."""
        return {"Authorization": f"Bearer {self.api_key}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _jaeger(tmp_path_factory: pytest.TempPathFactory) -> LocalJaeger | None:
    """A private Jaeger for the session, or None where it is not built and Go cannot build it.

    `make test` builds it first (`jobrelay dev jaeger provision`) when Go is there, so the
    build's few minutes do not count against a test's timeout.
    """
    ports = JaegerPorts(*(_free_port() for _ in range(4)))
    jaeger = LocalJaeger(run_dir=tmp_path_factory.mktemp("jaeger"), ports=ports)
    return jaeger if jaeger.binary.is_file() or shutil.which("go") else None


@pytest.fixture(scope="session")
def running_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Start the four services like `jobrelay dev up --jaeger`, exporting traces to a local collector.

    The collector keeps the spans for the tests and passes every export on to Jaeger.
    """
    jaeger = _jaeger(tmp_path_factory)
    with collecting(forward_to=jaeger.otlp_endpoint if jaeger else None) as traces:
        try:
            yield from _stack(kafka_bootstrap, tmp_path_factory, traces, jaeger)
        finally:
            if jaeger is not None:
                jaeger.down()


def _stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, traces: Collector, jaeger: LocalJaeger | None
) -> Iterator[RunningStack]:
    run = uuid.uuid4().hex[:8]
    ports = {name: _free_port() for name in ("intake", "projector", "notifier", "processor")}
    prefix = f"e2e{run}."
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("JOBRELAY_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOBRELAY_TOPICS_PREFIX": prefix,
        "JOBRELAY_TOPICS_PARTITIONS": "3",
        "JOBRELAY_LOG_FORMAT": "json",
        "JOBRELAY_INTAKE_STATUS_BASE_URL": f"http://127.0.0.1:{ports['projector']}",
        "JOBRELAY_INTAKE_CALLBACK_ALLOW_HTTP": "true",
        "JOBRELAY_INTAKE_MAX_WAIT_S": str(MAX_WAIT_S),
        "JOBRELAY_INTAKE_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "JOBRELAY_NOTIFIER_ALLOW_HTTP": "true",
        "JOBRELAY_NOTIFIER_ALLOWED_NETWORKS": "127.0.0.1/32",
        "JOBRELAY_NOTIFIER_STATUS_BASE_URL": f"http://127.0.0.1:{ports['projector']}",
        "JOBRELAY_NOTIFIER_GROUP_ID": f"e2e{run}-notifier",
        "JOBRELAY_PROCESSOR_GROUP_ID": f"e2e{run}-processor",
        "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"e2e{run}",
        "JOBRELAY_PROCESSOR_BACKOFF_BASE_S": "0.1",
        "JOBRELAY_PROCESSOR_HEARTBEAT_INTERVAL_S": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export spans within 0.2 s, not 5 s
    }
    run_dir: Path = tmp_path_factory.mktemp("stack")
    stack = Stack(env=env, run_dir=run_dir, ports=ports, jaeger=jaeger)
    stack.up(timeout=120)
    api_key = stack.api_key()
    env["JOBRELAY_API_KEY"] = api_key  # for the CLI the tests run
    try:
        yield RunningStack(
            stack,
            env,
            TopicSettings(prefix=prefix, partitions=3),
            KafkaSettings(bootstrap_servers=kafka_bootstrap),
            traces,
            jaeger,
            api_key,
        )
    finally:
        stack.stop()
