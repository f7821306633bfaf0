"""A real uvicorn server in a thread, on an ephemeral port, for tests of HTTP services."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.intake.main import create_app
from jobrelay.intake.settings import IntakeSettings
from jobrelay.messaging.topics import ensure_topics
from jobrelay.sdk.identity import job_id_for
from jobrelay.security.keys import KeyFile


def wait_until(condition: Callable[[], bool], deadline: float = 30.0, what: str = "condition") -> None:
    """Poll `condition` until true; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {deadline}s")


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1:<ephemeral> in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn started")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def ready(base_url: str) -> bool:
    """Whether the service's /readyz says ready."""
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_intake(settings: IntakeSettings, kafka: KafkaSettings, topics: TopicSettings) -> Iterator[str]:
    """A real intake on an ephemeral port, ready (producer connected) when this yields."""
    with serving(create_app(settings, kafka, topics)) as url:
        wait_until(lambda: ready(url), 60, "intake ready")
        yield url


def fresh_topics(kafka: KafkaSettings, partitions: int = 3) -> TopicSettings:
    """Four new co-partitioned topics nobody else uses."""
    topics = TopicSettings(prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=partitions)
    ensure_topics(kafka, topics)
    return topics


def intake_settings(tmp: Path, **overrides: Any) -> IntakeSettings:
    """Settings for a test intake: its own SQLite file, test-friendly limits."""
    values: dict[str, Any] = {"port": 0, "idempotency_db": tmp / "keys.sqlite3", "publish_timeout_s": 5.0}
    return IntakeSettings(**(values | overrides))


def expected_job_id(idempotency_key: str, tenant: str = "anonymous") -> str:
    """The id the test intakes give a key: keyed with the session's id secret (tests/conftest.py's key file)."""
    secret = KeyFile(Path(os.environ["JOBRELAY_AUTH_KEYS_FILE"])).ensure_id_secret()
    return job_id_for(idempotency_key, tenant, secret=secret)
