"""A small real HTTP server answering `GET /v1/jobs/{id}` the way the status projector does.

Each known job follows a script of statuses; every answer moves it one step on. It sends
`Retry-After` while the job is not terminal and an `ETag`, and when `long_poll` is on it honours
`Prefer: wait=N` (answering with `Preference-Applied`). It records every request it saw.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


@dataclass
class Seen:
    """One request the fake projector answered."""

    at: float
    path: str
    headers: dict[str, str]


@dataclass
class FakeProjector:
    """Scripts per job id, and what was asked."""

    long_poll: bool = False
    retry_after: int = 1
    scripts: dict[str, list[str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def view(self, job_id: str, step: int) -> dict[str, Any]:
        """The status document of `job_id` at `step` of its script."""
        script = self.scripts[job_id]
        status = script[min(step, len(script) - 1)]
        base = f"{self.url}/v1/jobs/{job_id}"
        body: dict[str, Any] = {
            "id": job_id,
            "type": "demo.echo",
            "status": status,
            "progress": None,
            "message": None,
            "attempts": 1,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:01Z",
            "links": {"status": base},
        }
        if status == "succeeded":
            body["result"] = {"echo": 1}
        return body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProjector
    steps: dict[str, int]

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.fake.seen.append(Seen(time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}))
        match = re.fullmatch(r"/v1/jobs/([^/]+)", self.path)
        if not match or match.group(1) not in self.fake.scripts:
            return self._send(404, {"type": "about:blank", "title": "Not Found", "status": 404}, {})
        job_id = match.group(1)
        wait = re.search(r"wait=(\d+)", self.headers.get("Prefer", ""))
        headers = {}
        if self.fake.long_poll and wait:
            time.sleep(min(int(wait.group(1)), 0.2))  # "until the job changes": it changes every step
            headers["Preference-Applied"] = f"wait={wait.group(1)}"
        step = self.steps.get(job_id, 0)
        self.steps[job_id] = step + 1
        body = self.fake.view(job_id, step)
        headers["ETag"] = f'"{job_id}-{step}"'
        if body["status"] not in TERMINAL:
            headers["Retry-After"] = str(self.fake.retry_after)
        self._send(200, body, headers)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        ctype = "application/json" if status == 200 else "application/problem+json"
        for name, value in {"Content-Type": ctype, "Content-Length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def fake_projector(**options: Any) -> Iterator[FakeProjector]:
    """Serve a FakeProjector on 127.0.0.1:<ephemeral> in a thread."""
    fake = FakeProjector(**options)
    handler = type("Handler", (_Handler,), {"fake": fake, "steps": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
