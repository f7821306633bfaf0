"""httpgen: its output parser and arguments (pure), and the built program against a local server."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import httpgen
from bench.httpgen import Attack, attack_args, parse_csv

LINES = '0,1000000000,1000500000,1003000000,202,abc,""\n1,1005000000,1005000000,1030000000,0,,"read failed"\n'


def test_results_are_parsed_in_seconds_with_quoted_errors() -> None:
    first, second = parse_csv(LINES)
    assert (first.seq, first.due, first.sent, first.answered, first.code, first.job_id, first.error) == (
        0, 1.0, 1.0005, 1.003, 202, "abc", "",
    )  # fmt: skip
    assert (second.code, second.job_id, second.error) == (0, "", "read failed")


def test_arguments_for_open_loop_and_saturation() -> None:
    args = attack_args(Attack("http://127.0.0.1:8000/v1/jobs", b"{}", 5, 200, 64), Path("b"), Path("o"))
    assert "-addr=127.0.0.1:8000" in args
    assert "-path=/v1/jobs" in args
    assert "-rate=200" in args
    assert "-duration=5s" in args
    saturation = attack_args(Attack("http://127.0.0.1:8000/v1/jobs", b"{}", 2, None, 16), Path("b"), Path("o"))
    assert "-rate=0" in saturation
    assert "-connections=16" in saturation


class _Accepting(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the intake

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"id": str(uuid.uuid4()), "status": "PENDING"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/jobs"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def generator() -> Path:
    if httpgen.missing() is not None:
        pytest.skip("no C compiler to build bench/httpgen")
    return httpgen.provision()


def test_open_loop_sends_on_the_schedule_and_reads_every_id(server: str, generator: Path, tmp_path: Path) -> None:
    result = httpgen.attack(generator, Attack(server, b'{"type": "x"}', 0.25, 200, 4), tmp_path)
    hits = sorted(result.hits, key=lambda h: h.seq)
    assert [h.seq for h in hits] == list(range(50))
    assert all(h.code == 202 and not h.error for h in hits)
    assert len({h.job_id for h in hits}) == 50
    assert all(len(h.job_id) == 36 for h in hits)
    # due times are the schedule itself (5 ms apart), whatever the server did; nothing leaves early
    assert all(abs((h.due - hits[0].due) - h.seq * 0.005) < 1e-6 for h in hits)
    assert all(h.due <= h.sent <= h.answered for h in hits)
    assert result.cpu_s > 0


def test_saturation_keeps_the_connections_busy_until_the_end(server: str, generator: Path, tmp_path: Path) -> None:
    result = httpgen.attack(generator, Attack(server, b"{}", 0.2, None, 3), tmp_path)
    assert len(result.hits) > 3
    assert sorted(h.seq for h in result.hits) == list(range(len(result.hits)))
    # due when the connection was free (the first includes connecting), so sent follows at once
    assert all(h.code == 202 and h.due <= h.sent <= h.answered for h in result.hits)
