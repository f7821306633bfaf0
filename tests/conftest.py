"""Session-wide fixtures: one real Kafka broker and one real PostgreSQL per test session, fresh topics
and a fresh schema per test.

The broker is, in order of preference: a testcontainers Kafka when JOBRELAY_TEST_KAFKA is
`testcontainers` (needs a Docker engine); the cluster KAFKA_BOOTSTRAP_SERVERS names; or the
project's local broker, started here when none answers and stopped at the end if this session
started it. PostgreSQL likewise: the database JOBRELAY_TEST_POSTGRES_DSN names, or the project's
local server (`jobrelay dev postgres up`), started when needed and stopped if this session started it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.dev.localkafka import LocalKafka
from jobrelay.dev.localpostgres import LocalPostgres
from jobrelay.messaging.topics import ensure_topics
from jobrelay.observability.tracing import configure_tracing

# The services' own tests run them behind a "gateway" (the caller's tenant is the X-Client-Id
# header, as before API keys existed), with a key file of the session's own; the tests of API
# keys (tests/integration/test_auth.py) and the dev stack (tests/e2e) use keys, as `make run` does.
os.environ.setdefault("JOBRELAY_AUTH", "gateway")
# demo.sleep's `record` (which attempts ran) writes only inside this folder; tests record under tmp_path.
os.environ.setdefault("JOBRELAY_DEMO_RECORD_DIR", tempfile.gettempdir())
os.environ.setdefault("JOBRELAY_AUTH_KEYS_FILE", os.path.join(tempfile.mkdtemp(prefix="jobrelay-keys-"), "keys.json"))


@pytest.fixture(scope="session", autouse=True)
def spans() -> InMemorySpanExporter:
    """Every span the test session finishes, as the services would export them."""
    exporter = InMemorySpanExporter()
    configure_tracing("jobrelay-tests", record=True).add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker for this session."""
    if os.environ.get("JOBRELAY_TEST_KAFKA") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    broker = LocalKafka()
    started = broker.up()
    yield broker.bootstrap
    if started:
        broker.down()


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings pointing at the session's broker, without a Schema Registry."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, schema_registry_url=None)


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> TopicSettings:
    """Four fresh co-partitioned topics (3 partitions) that no other test uses."""
    settings = TopicSettings(prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=3)
    ensure_topics(kafka_settings, settings)
    return settings


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN (URL form) of a real PostgreSQL database for this session."""
    if os.environ.get("JOBRELAY_TEST_POSTGRES_DSN"):
        yield os.environ["JOBRELAY_TEST_POSTGRES_DSN"]
        return
    server = LocalPostgres()
    started = server.up()
    yield server.dsn
    if started:
        server.down()


def _in_schema(dsn: str, schema: str) -> str:
    """`dsn` with its tables in `schema` (asyncpg passes unknown URL parameters on as session settings)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
async def postgres_dsn(postgres_server: str) -> AsyncIterator[str]:
    """A DSN whose tables live in a fresh schema of the session's database, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(postgres_server)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield _in_schema(postgres_server, schema)
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()
