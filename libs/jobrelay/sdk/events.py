"""`events()`: jobs' status documents as they change, over Server-Sent Events, resumed after every drop.

Several jobs (or every job of the tenant) ride the status view's many-job stream,
`GET /v1/events?job=ID&job=ID…`; a single job rides its own stream, `GET /v1/jobs/{id}/events`.
Each `status` event is the job's whole status document with an increasing id; after a dropped
connection, a 503 or a restart of the status view, the client reconnects with `Last-Event-ID`,
so it gets only what changed since, and skips anything not newer than what it has (never a
repeat). An id (`JobView.sequence`) is the stream's own: the many-job stream's change number, or
on a single job's stream that job's version; pass it back as `after=` to the same kind of call.
Reconnecting follows the client's `RetryPolicy` (full-jitter backoff, Retry-After);
`StreamLost` after `give_up_after` seconds without getting back on. Following a list of jobs
ends once every one of them is terminal; following the tenant never ends by itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse, connect_sse

from jobrelay.sdk._http import ClientConfig, JobRef
from jobrelay.sdk.errors import StreamLost, describe
from jobrelay.sdk.retrying import RetryPolicy, retryable
from jobrelay.sdk.status import JobView, raise_for_problem

__all__ = ["IDLE_TIMEOUT_S", "Follow", "follow_async", "follow_blocking"]

log = logging.getLogger("jobrelay.sdk")

IDLE_TIMEOUT_S = 60.0  # a stream silent this long (no event, no keep-alive ping) is taken as dead


class Follow:
    """One `events()` call's state: the stream to ask, the last event id, the jobs not over yet (no I/O)."""

    def __init__(
        self,
        config: ClientConfig,
        jobs: Iterable[JobRef] | None,
        after: int | None,
        on_drop: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.on_drop = on_drop  # told when a stream that was up went away (before reconnecting)
        ids = None if jobs is None else list(dict.fromkeys(j if isinstance(j, str) else j.id for j in jobs))
        self.pending: set[str] | None = None if ids is None else set(ids)  # None: every job of the tenant
        self.last_id, self.connected = after, False
        base = config.status_base_url.rstrip("/")
        self.url = f"{base}/v1/jobs/{ids[0]}/events" if ids and len(ids) == 1 else f"{base}/v1/events"
        self.params = [("job", i) for i in ids] if ids and len(ids) > 1 else []
        self.headers = config.headers() | {"Accept": "text/event-stream"}

    @property
    def done(self) -> bool:
        """Whether every job followed is terminal (never, when following the tenant)."""
        return self.pending is not None and not self.pending

    def request_headers(self) -> dict[str, str]:
        """Headers of the next connection: `Last-Event-ID` once anything was seen."""
        resume = {} if self.last_id is None else {"Last-Event-ID": str(self.last_id)}
        return self.headers | resume

    def opened(self, response: httpx.Response) -> bool:
        """Check a connection's answer; False when there is nothing more to stream (204)."""
        if response.status_code == 204:
            self.pending = set()  # the stream ended before: every job is over
            return False
        if not response.is_success:
            response.read()
            raise_for_problem(response)
        self.connected = True
        return True

    def accept(self, event: ServerSentEvent) -> JobView | None:
        """The status document an event carries, or None (keep-alive, `open`, a repeat)."""
        if event.event == "purged":  # the view forgot the job: nothing more will come for it
            self._finish(str(json.loads(event.data).get("id", "")))
            return None
        sequence = int(event.id) if event.id.isdigit() else None
        if sequence is not None and self.last_id is not None and sequence <= self.last_id:
            return None  # a keep-alive (it carries the last id again) or a repeat
        self.last_id = sequence if sequence is not None else self.last_id
        if event.event != "status":
            return None  # `open` (where the tenant's stream starts) or an event this client does not know
        view = JobView.model_validate(json.loads(event.data) | {"sequence": sequence})
        if view.terminal:
            self._finish(view.id)
        return view

    def _finish(self, job_id: str) -> None:
        if self.pending is not None:
            self.pending.discard(job_id)

    def ended(self) -> None:
        """The server closed the stream: fine once every job is over, else reconnect."""
        if not self.done:
            self.dropped(httpx.RemoteProtocolError("the stream ended before the jobs did"))

    def dropped(self, exc: BaseException) -> None:
        """After a drop: reconnect at once if the stream had been up, else raise (a failed try, paused)."""
        if not self.connected:
            raise exc
        log.info("event stream dropped (%s); reconnecting after event %s", describe(exc), self.last_id)
        if self.on_drop is not None:
            self.on_drop(exc)

    def lost(self, error: BaseException, gave_up_after: float) -> StreamLost:
        """The error when reconnecting failed for too long."""
        return StreamLost(self.url, self.last_id, error, gave_up_after)


def _stream_timeout(base: httpx.Timeout) -> httpx.Timeout:
    return httpx.Timeout(connect=base.connect, read=IDLE_TIMEOUT_S, write=base.write, pool=base.pool)


def follow_blocking(
    http: httpx.Client, config: ClientConfig, policy: RetryPolicy, follow: Follow, give_up_after: float
) -> Iterator[JobView]:
    """Yield the documents `follow` asks for, reconnecting as the module doc says."""
    while not follow.done:
        try:
            for attempt in policy.retrying(policy.clock() + give_up_after):
                with attempt:
                    yield from _session(http, follow)
        except Exception as exc:
            if not retryable(exc):
                raise
            raise follow.lost(exc, give_up_after) from exc


def _session(http: httpx.Client, follow: Follow) -> Iterator[JobView]:
    follow.connected = False
    kwargs: dict[str, Any] = {"params": follow.params, "timeout": _stream_timeout(http.timeout)}
    try:
        with connect_sse(http, "GET", follow.url, headers=follow.request_headers(), **kwargs) as source:
            if follow.opened(source.response):
                yield from _views(source, follow)
        follow.ended()
    except (httpx.TransportError, httpx.StreamError) as exc:
        follow.dropped(exc)


def _views(source: EventSource, follow: Follow) -> Iterator[JobView]:
    for event in source.iter_sse():
        view = follow.accept(event)
        if view is not None:
            yield view
        if follow.done:
            return


async def follow_async(
    http: httpx.AsyncClient, config: ClientConfig, policy: RetryPolicy, follow: Follow, give_up_after: float
) -> AsyncIterator[JobView]:
    """Like `follow_blocking`, for asyncio."""
    while not follow.done:
        try:
            async for attempt in policy.aretrying(policy.clock() + give_up_after):
                with attempt:
                    async for view in _asession(http, follow):
                        yield view
        except Exception as exc:
            if not retryable(exc):
                raise
            raise follow.lost(exc, give_up_after) from exc


async def _asession(http: httpx.AsyncClient, follow: Follow) -> AsyncIterator[JobView]:
    follow.connected = False
    kwargs: dict[str, Any] = {"params": follow.params, "timeout": _stream_timeout(http.timeout)}
    try:
        async with aconnect_sse(http, "GET", follow.url, headers=follow.request_headers(), **kwargs) as source:
            if follow.opened(source.response):
                async for event in source.aiter_sse():
                    view = follow.accept(event)
                    if view is not None:
                        yield view
                    if follow.done:
                        return
        follow.ended()
    except (httpx.TransportError, httpx.StreamError) as exc:
        follow.dropped(exc)
