"""A minimal OTLP/HTTP trace collector on 127.0.0.1: what Jaeger would receive from the services."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    """One exported span, reduced to what the tests look at."""

    service: str
    name: str
    trace_id: str
    attributes: dict[str, str]


@dataclass
class Collector:
    """Spans received so far (thread-safe append)."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""
    forward_errors: list[str] = field(default_factory=list)

    def add(self, request: ExportTraceServiceRequest) -> None:
        """Record every span of one export request."""
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    with self.lock:
                        self.spans.append(
                            Span(resource.get("service.name", ""), span.name, span.trace_id.hex(), attributes)
                        )

    def snapshot(self) -> list[Span]:
        """A copy of the spans received so far."""
        with self.lock:
            return list(self.spans)


def _forward(collector: Collector, endpoint: str, body: bytes) -> None:
    request = urllib.request.Request(  # noqa: S310 - a local Jaeger the test session started
        f"{endpoint}/v1/traces", data=body, headers={"content-type": "application/x-protobuf"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
    except OSError as exc:
        with collector.lock:
            collector.forward_errors.append(repr(exc))


@contextmanager
def collecting(forward_to: str | None = None) -> Iterator[Collector]:
    """Serve OTLP/HTTP (`POST /v1/traces`, protobuf) on a free port until the block exits.

    With `forward_to` (an OTLP/HTTP endpoint such as a local Jaeger's) every export request is
    also passed on there, unchanged.
    """
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            collector.add(request)
            if forward_to:
                _forward(collector, forward_to, body)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_: object) -> None:  # keep the test output quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    collector.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
