"""Accepting a job: derive its id, check the Idempotency-Key, publish, wait for Kafka's ack.

A job is accepted only once its JobRequested record is acknowledged (acks=all). Concurrent
requests with the same key in this process share one publish; a key seen before answers from
the idempotency store without a second record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from jobrelay.intake.broker import BrokerLink
from jobrelay.intake.store import IdempotencyStore
from jobrelay.jobs.events import JobRequested
from jobrelay.messaging.acked import Position, PublishError
from jobrelay.observability.logging import get_logger

__all__ = ["ACCEPT_SECONDS", "REQUESTS", "Accepted", "BrokerUnavailable", "IdempotencyConflict", "Intake"]

log = get_logger(__name__)
REQUESTS = Counter("jobrelay_intake_requests_total", "POST /v1/jobs answers", ["outcome"])
ACCEPT_SECONDS = Histogram(
    "jobrelay_intake_accept_seconds",
    "From request to Kafka's acknowledgement",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A job on job-requested; `replayed` when an earlier request with the same key put it there."""

    job_id: str
    replayed: bool = False


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time (or is unreachable): nothing was accepted."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used for a different request."""


class Intake:
    """Publishes JobRequested events, at most once per idempotent job id per replica."""

    def __init__(self, link: BrokerLink, store: IdempotencyStore, publish_timeout_s: float) -> None:
        self._link, self._store, self._timeout = link, store, publish_timeout_s
        self._inflight: dict[str, tuple[str, asyncio.Future[None]]] = {}

    async def accept(self, event: JobRequested) -> Accepted:
        """Put `event` on job-requested, or tell that it is there already."""
        if event.idempotency_key is None:
            await self._publish(event)
            return Accepted(event.job_id)
        inflight = self._inflight.get(event.job_id)
        if inflight is not None:
            return await self._join(event, *inflight)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[event.job_id] = (event.request_hash, done)  # before any await: no race
        try:
            accepted = await self._accept_once(event)
            done.set_result(None)
            return accepted
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: joiners re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[event.job_id]

    async def _join(self, event: JobRequested, request_hash: str, done: asyncio.Future[None]) -> Accepted:
        if request_hash != event.request_hash:
            raise IdempotencyConflict(event.job_id)
        await asyncio.shield(done)
        return Accepted(event.job_id, replayed=True)

    async def _accept_once(self, event: JobRequested) -> Accepted:
        known = await self._store.lookup(event.job_id)
        if known is not None:
            if known != event.request_hash:
                raise IdempotencyConflict(event.job_id)
            return Accepted(event.job_id, replayed=True)
        await self._publish(event)
        try:
            await self._store.remember(event.job_id, event.request_hash)
        except Exception:  # the job is on Kafka: still a 202; only the 422 check is weaker
            log.exception("idempotency key not stored", job_id=event.job_id)
        return Accepted(event.job_id)

    async def _publish(self, event: JobRequested) -> None:
        publisher = self._link.publisher
        if publisher is None:
            raise BrokerUnavailable("not connected to Kafka yet")
        try:
            acked = publisher.publish(event)
            # On the deadline the wait ends, not the send: the record may still land (the producer
            # is idempotent and librdkafka gives up on it soon after); a retry with the key is safe.
            deadline = asyncio.get_running_loop().call_later(self._timeout, _expire, acked)
            try:
                await acked
            finally:
                deadline.cancel()
        except TimeoutError as exc:
            self._link.mark(False)
            raise BrokerUnavailable(f"Kafka did not acknowledge within {self._timeout:g}s") from exc
        except PublishError as exc:
            self._link.mark(False)
            raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
        self._link.mark(True)


def _expire(acked: asyncio.Future[Position]) -> None:
    # A timer on the future itself: cheaper than a timeout scope per request.
    if not acked.done():
        acked.set_exception(TimeoutError())
