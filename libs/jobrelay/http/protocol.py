"""uvicorn's httptools protocol with the limits it lacks: request-head size, header count, body-read time.

uvicorn buffers a request head of any size and waits for a body forever: a 100 MB header was read
whole, and a request announcing `Content-Length: 100` that sends 10 bytes held its connection open
indefinitely. Here, per connection:

- the bytes of a request head (request line and headers) are counted as they arrive; past
  `max_head_bytes`, or past `max_headers` header lines, the answer is `431` (problem+json) and the
  connection is closed without reading the rest;
- once the head is complete, the body must arrive within `body_timeout_s`; otherwise the answer
  is `408` (when no response was started) and the connection is closed, so the application sees
  the client gone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpLimits", "LimitedHttpToolsProtocol", "limited_protocol"]


class HttpLimits:
    """The limits, shared by every connection of a server."""

    def __init__(self, max_head_bytes: int, max_headers: int, body_timeout_s: float) -> None:
        self.max_head_bytes, self.max_headers, self.body_timeout_s = max_head_bytes, max_headers, body_timeout_s


def _problem(status: int, reason: bytes, title: str, detail: str) -> bytes:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason, len(body))
    )
    return head + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that bounds the request head and the time a body may take."""

    limits = HttpLimits(16 * 1024, 100, 30.0)  # replaced per server by `limited_protocol`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head, self._head_bytes, self._head_lines = True, 0, 0
        self._last3 = b""  # the previous chunk's end: the blank line ending a head may straddle chunks
        self._body_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        """Count the head as it arrives and refuse it past the limits, then parse as uvicorn does."""
        if self._in_head:
            window = self._last3 + data
            end = window.find(b"\r\n\r\n")  # only the head counts, not a body sent with it
            head = data if end < 0 else data[: max(0, end + 4 - len(self._last3))]
            self._last3 = window[-3:]
            self._head_bytes += len(head)
            self._head_lines += head.count(b"\n")
            if self._head_bytes > self.limits.max_head_bytes or self._head_lines > self.limits.max_headers + 2:
                self._refuse(
                    _problem(
                        431,
                        b"Request Header Fields Too Large",
                        "Request header fields too large",
                        f"the request head is limited to {self.limits.max_head_bytes} bytes "
                        f"and {self.limits.max_headers} header fields",
                    )
                )
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A new request: its head is counted from here."""
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        """The head is complete: the body (if any) must arrive within the body timeout."""
        self._in_head, self._head_bytes, self._head_lines, self._last3 = False, 0, 0, b""
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        """The whole request arrived: no timeout any more."""
        self._cancel_body_timer()
        self._in_head = True  # whatever comes next on this connection is the next request's head
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to time out on a closed connection."""
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        started = self.cycle is not None and self.cycle.response_started
        detail = f"the request body did not arrive within {self.limits.body_timeout_s:g}s"
        self._refuse(b"" if started else _problem(408, b"Request Timeout", "Request timeout", detail))

    def _refuse(self, response: bytes) -> None:
        self._cancel_body_timer()
        if response:
            self.transport.write(response)
        self.transport.close()


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class with these limits, for `uvicorn.Config(http=…)`."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
