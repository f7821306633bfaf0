"""The HTTP server's own limits, over raw sockets: an oversized head gets 431, a stalled body is cut off.

The intake is served exactly as `jobrelay intake` serves it (`jobrelay.http.runner.server_config`:
httptools with the limits), with a short body timeout for the test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from jobrelay.config.settings import HttpSettings, KafkaSettings, TopicSettings
from jobrelay.http.runner import server_config
from jobrelay.intake.main import create_app
from tests.integration.intakeserver import intake_settings

pytestmark = pytest.mark.kafka
BODY_TIMEOUT_S = 1.0


@pytest.fixture
async def intake(kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> AsyncIterator[int]:
    app = create_app(intake_settings(tmp_path), kafka_settings, topics)
    limits = HttpSettings(max_head_bytes=8192, max_headers=50, body_timeout_s=BODY_TIMEOUT_S)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, limits=limits))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the intake did not start"
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, request: bytes, *, wait_s: float = 10.0) -> tuple[bytes, float]:
    """Send `request` raw in 16 KiB pieces while reading; what came back before the close, and how long it took.

    Writing stops as soon as an answer arrives (a server that refuses a head closes the connection;
    writing on would make the kernel reset it and drop the answer).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    answer = bytearray()

    async def read() -> None:
        while chunk := await reader.read(65536):
            answer.extend(chunk)

    reading = asyncio.create_task(read())
    try:
        for start in range(0, len(request), 16384):
            if answer or reading.done():
                break
            writer.write(request[start : start + 16384])
            await writer.drain()
            await asyncio.sleep(0)  # let the reader see an early answer
        async with asyncio.timeout(wait_s):
            await reading
    except ConnectionError:
        pass
    finally:
        reading.cancel()
        writer.close()
    return bytes(answer), time.monotonic() - started


async def test_a_huge_header_gets_431_and_is_not_read(intake: int) -> None:
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 5_000_000 + b"\r\n\r\n"
    answer, _ = await _exchange(intake, head)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"application/problem+json" in answer


async def test_too_many_header_fields_get_431(intake: int) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % n for n in range(200))
    answer, _ = await _exchange(intake, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


async def test_a_body_that_stalls_is_cut_off_within_the_timeout(intake: int) -> None:
    request = (
        b'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"type":'
    )
    answer, took = await _exchange(intake, request, wait_s=BODY_TIMEOUT_S + 10)
    assert took < BODY_TIMEOUT_S + 3, f"the connection stayed open {took:.1f}s"
    print(f"figure: body timeout {BODY_TIMEOUT_S} s -> stalled connection closed after {took:.2f} s")
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:100]


async def test_ordinary_requests_with_a_body_in_the_same_packet_still_pass(intake: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{intake}") as http:
        body = {"type": "demo.echo", "payload": {"text": "x" * 50_000}}  # a body far bigger than the head limit
        response = await http.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        assert (await http.get("/healthz")).status_code == 200, "the connection limits reset per request"
