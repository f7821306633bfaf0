"""A private stack for the SDK's resilience tests: intake, processor and status projector as processes
on the real broker, with a projector that a test can stop and start again on the same port.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobrelay.dev.localkafka import port_open
from jobrelay.dev.stack import Service, Stack
from jobrelay.sdk import AsyncJobClient, JobClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class SdkStack:
    """Where the stack listens, its environment (with the API key) and how to restart the projector."""

    stack: Stack
    env: dict[str, str]
    api_key: str

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return self._service(name).url

    def _service(self, name: str) -> Service:
        return next(s for s in self.stack.services if s.name == name)

    def client(self) -> JobClient:
        """A blocking SDK client of the stack."""
        return JobClient(self.url("intake"), status_base_url=self.url("projector"), api_key=self.api_key)

    def async_client(self) -> AsyncJobClient:
        """An asyncio SDK client of the stack."""
        return AsyncJobClient(self.url("intake"), status_base_url=self.url("projector"), api_key=self.api_key)

    def stop_projector(self) -> None:
        """Stop the projector process (SIGTERM; SIGKILL after 3 s, as an impatient restart does)."""
        projector = self._service("projector")
        assert self.stack.stop([projector], grace=3.0) == [projector], "the projector was not running"
        assert not port_open("127.0.0.1", projector.port), "the projector still answers"

    def start_projector(self) -> None:
        """Start the projector again, on the same port and the same view, until it answers /healthz."""
        _, started = self.stack.up(timeout=120)
        assert [s.name for s in started] == ["projector"]


@pytest.fixture(scope="module")
def sdk_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkStack]:
    """Intake, processor (demo handlers) and projector as `jobrelay dev up` runs them, on private topics."""
    run = uuid.uuid4().hex[:8]
    ports = {name: _free_port() for name in ("intake", "projector", "processor")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBRELAY_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOBRELAY_TOPICS_PREFIX": f"sdk{run}.",
        "JOBRELAY_TOPICS_PARTITIONS": "3",
        "JOBRELAY_LOG_FORMAT": "json",
        "JOBRELAY_INTAKE_STATUS_BASE_URL": f"http://127.0.0.1:{ports['projector']}",
        "JOBRELAY_PROCESSOR_GROUP_ID": f"sdk{run}-processor",
        "JOBRELAY_PROCESSOR_TRANSACTIONAL_ID_PREFIX": f"sdk{run}",
        "JOBRELAY_PROJECTOR_SSE_PING_S": "1",
    }
    run_dir: Path = tmp_path_factory.mktemp("sdkstack")
    stack = Stack(env=env, run_dir=run_dir, ports=ports)
    stack.services = tuple(s for s in stack.services if s.name != "notifier")  # no webhooks here
    stack.up(timeout=120)
    try:
        yield SdkStack(stack, env | {"JOBRELAY_API_KEY": stack.api_key()}, stack.api_key())
    finally:
        stack.stop()
