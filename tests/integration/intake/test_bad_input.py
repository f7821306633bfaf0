"""Each kind of bad input gets its own problem+json answer naming the field, and no record.

One intake (small limits, an allow-list of job types) serves every case of this module; the last
check of each case is that job-requested is still empty: a rejected request leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_consumer, topic_partitions
from tests.integration.intakeserver import fresh_topics, intake_settings, running_intake

pytestmark = pytest.mark.kafka
JSON = {"Content-Type": "application/json"}
SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def shared_topics(kafka_settings: KafkaSettings) -> TopicSettings:
    return fresh_topics(kafka_settings)


@pytest.fixture(scope="module")
def strict_intake(
    kafka_settings: KafkaSettings, shared_topics: TopicSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = intake_settings(
        tmp_path_factory.mktemp("intake"),
        max_body_bytes=4096,
        max_payload_bytes=1024,
        allowed_types=("report.*", "demo.echo"),
        max_timeout_s=3600,
        max_attempts=10,
        max_expires_in_s=7 * 86400,
    )
    with running_intake(settings, kafka_settings, shared_topics) as url:
        yield url


@pytest.fixture
async def http(strict_intake: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=strict_intake) as client:
        yield client


async def _records_on(kafka: KafkaSettings, topic: str) -> int:
    consumer = make_consumer(kafka, "test-count")
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def _job(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "report.generate", "payload": {"n": 1}}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def _hook(url: str) -> dict[str, Any]:
    return _job(callback_url=url)


# (case id, JSON body, expected status, the field the problem must name)
FIELD_CASES: list[tuple[str, Any, int, str]] = [
    ("not an object", [1, 2], 422, "body"),
    ("type missing", _job(type=...), 422, "body.type"),
    ("type not a dotted name", _job(type="Report Generate!"), 422, "body.type"),
    ("type too long", _job(type="a." * 100 + "b"), 422, "body.type"),
    ("type not allowed here", _job(type="payroll.run"), 422, "body.type"),
    ("payload missing", _job(payload=...), 422, "body.payload"),
    ("payload over its limit", _job(payload="x" * 2000), 413, "body.payload"),
    ("unknown field", _job(priority=5), 422, "body.priority"),
    ("timeout_s zero", _job(timeout_s=0), 422, "body.timeout_s"),
    ("timeout_s negative", _job(timeout_s=-5), 422, "body.timeout_s"),
    ("timeout_s over the bound", _job(timeout_s=3601), 422, "body.timeout_s"),
    ("timeout_s not a number", _job(timeout_s="soon"), 422, "body.timeout_s"),
    # strict types (an outside probe found these coerced): no booleans, no numbers in strings, no 1e1 for an int
    ("timeout_s a boolean", _job(timeout_s=True), 422, "body.timeout_s"),
    ("timeout_s a numeric string", _job(timeout_s="30"), 422, "body.timeout_s"),
    ("max_attempts a boolean", _job(max_attempts=True), 422, "body.max_attempts"),
    ("max_attempts a numeric string", _job(max_attempts="3"), 422, "body.max_attempts"),
    ("max_attempts a float", _job(max_attempts=1e1), 422, "body.max_attempts"),
    ("max_attempts zero", _job(max_attempts=0), 422, "body.max_attempts"),
    ("max_attempts over the bound", _job(max_attempts=11), 422, "body.max_attempts"),
    ("expires_at in the past", _job(expires_at="2020-01-01T00:00:00Z"), 422, "body.expires_at"),
    ("expires_at too far ahead", _job(expires_at="2999-01-01T00:00:00Z"), 422, "body.expires_at"),
    ("expires_at without a zone", _job(expires_at=SOON[:19]), 422, "body.expires_at"),
    ("expires_at not a date", _job(expires_at="tomorrow"), 422, "body.expires_at"),
    ("callback to loopback", _hook("https://127.0.0.1/hook"), 422, "body.callback_url"),
    ("callback to IPv6 loopback", _hook("https://[::1]/hook"), 422, "body.callback_url"),
    ("callback to cloud metadata", _hook("https://169.254.169.254/latest/meta-data"), 422, "body.callback_url"),
    ("callback to a private network", _hook("https://10.0.0.1/hook"), 422, "body.callback_url"),
    ("callback to a name resolving to loopback", _hook("https://localhost:8443/hook"), 422, "body.callback_url"),
    ("callback to IPv4-mapped loopback", _hook("https://[::ffff:127.0.0.1]/hook"), 422, "body.callback_url"),
    ("callback over plain http", _hook("http://1.1.1.1/hook"), 422, "body.callback_url"),
    ("callback with credentials", _hook("https://user:pw@1.1.1.1/hook"), 422, "body.callback_url"),
    ("callback not a URL", _hook("file:///etc/passwd"), 422, "body.callback_url"),
]


@pytest.mark.parametrize(("body", "status", "field"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES])
async def test_an_invalid_field_is_named_and_nothing_is_written(
    http: httpx.AsyncClient,
    kafka_settings: KafkaSettings,
    shared_topics: TopicSettings,
    body: Any,
    status: int,
    field: str,
) -> None:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    _assert_problem(response, status, field)
    assert await _records_on(kafka_settings, shared_topics.requested) == 0


# (case id, raw body, headers, expected status, the field named)
RAW_CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed JSON", b'{"type": "report.generate", "payload": ', JSON, 400, "body"),
    ("payload with NaN (not JSON)", b'{"type": "report.generate", "payload": [NaN]}', JSON, 422, "body.payload"),
    ("text/plain body", json.dumps(_job()).encode(), {"Content-Type": "text/plain"}, 415, "header.Content-Type"),
    (
        "form body",
        b"type=report.generate",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "header.Content-Type",
    ),
    ("body over the limit", json.dumps(_job(payload="x" * 5000)).encode(), JSON, 413, "body"),
    (
        "Idempotency-Key too long",
        json.dumps(_job()).encode(),
        JSON | {"Idempotency-Key": "k" * 256},
        400,
        "header.Idempotency-Key",
    ),
    (
        "Idempotency-Key with control characters",
        json.dumps(_job()).encode(),
        JSON | {"Idempotency-Key": "a\tb"},
        400,
        "header.Idempotency-Key",
    ),
]


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
async def test_a_bad_body_or_header_is_refused_and_nothing_is_written(
    http: httpx.AsyncClient,
    kafka_settings: KafkaSettings,
    shared_topics: TopicSettings,
    content: bytes,
    headers: dict[str, str],
    status: int,
    field: str,
) -> None:
    response = await http.post("/v1/jobs", content=content, headers=headers)
    assert response.status_code == status, response.text
    _assert_problem(response, status, field)
    assert await _records_on(kafka_settings, shared_topics.requested) == 0


async def test_a_body_without_content_type_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", content=json.dumps(_job()).encode())
    assert response.status_code == 415
    _assert_problem(response, 415, "header.Content-Type")


async def test_a_streamed_body_over_the_limit_is_cut_off_with_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"type": "report.generate", "payload": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await http.post("/v1/jobs", content=chunks(), headers=JSON)
    assert response.status_code == 413
    _assert_problem(response, 413, "body")


async def test_every_field_error_is_listed_at_once(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json=_job(type="bad type", timeout_s=-1, max_attempts=0))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"body.type", "body.timeout_s", "body.max_attempts"}


async def test_a_valid_request_still_passes_the_strict_intake(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json=_job(type="demo.echo", callback_url="https://1.1.1.1/h"))
    assert response.status_code == 202
    # Only this module's last test writes: see the record count checks above.


def _assert_problem(response: httpx.Response, status: int, field: str) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["type"].startswith("https://")
    assert field in [e["field"] for e in problem["errors"]], problem
