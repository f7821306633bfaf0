"""One delivery attempt, from the checks before it to the state recorded after it.

Before sending: a URL disabled by an earlier 410 is not called; a URL the SSRF guard refuses is
refused for good (only a host that does not resolve counts as a passing failure). Then the body
is signed with every current secret and sent, inside a CLIENT span that is a child of the
JobCompleted's trace context, so the webhook belongs to the job's one trace. After: 2xx is
delivered, 410 disables the URL, anything else is retried on the schedule until it runs out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from jobrelay.notifier.deadletters import redacted
from jobrelay.notifier.metrics import ATTEMPT_SECONDS, ATTEMPTS, DELIVERIES, IN_FLIGHT
from jobrelay.notifier.retry import RETRY_AFTER_STATUSES, next_delay, parse_retry_after
from jobrelay.notifier.sender import Answer, IPAddress, post_pinned
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import Delivery, DeliveryState, DeliveryStore
from jobrelay.notifier.webhooks import signature_headers, tenant_of
from jobrelay.observability.logging import get_logger
from jobrelay.observability.tracing import JOB_ID_ATTRIBUTE, extract_context
from jobrelay.security.keys import KeyRing
from jobrelay.security.urls import UnresolvableHostError, UnsafeURLError, check_url

__all__ = ["Attempter", "Verdict"]

log = get_logger(__name__)
HOLD_SECONDS = 60.0  # how often a delivery with no signing secret is looked at again


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to record after an attempt: a final state, or (state None) the time of the next try."""

    state: DeliveryState | None
    attempts: int
    status: int | None = None
    error: str | None = None
    retry_at: float | None = None


def _result_label(answer: Answer) -> str:
    if answer.status is None:
        return "timeout" if answer.error and answer.error.startswith("no answer") else "error"
    return "410" if answer.status == 410 else f"{answer.status // 100}xx"


class Attempter:
    """Makes and records one attempt of a delivery."""

    def __init__(
        self,
        settings: NotifierSettings,
        client: httpx.AsyncClient,
        store: DeliveryStore,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        keys: KeyRing | None = None,
    ) -> None:
        """`keys`: the shared key file, whose tenants' own webhook secrets sign their callbacks."""
        self.settings, self.client, self.store, self.keys = settings, client, store, keys
        self.policy = settings.url_policy()
        self.clock, self.rng = clock, rng

    async def __call__(self, delivery: Delivery) -> Verdict:
        """Attempt `delivery` (or decide it cannot be) and record the verdict."""
        with structlog.contextvars.bound_contextvars(
            job_id=delivery.completion.job_id, webhook_id=delivery.webhook_id, url=redacted(delivery.url)
        ):
            verdict = await self.verdict(delivery)
            await self.record(delivery, verdict)
        return verdict

    async def verdict(self, d: Delivery) -> Verdict:
        """Check, send and judge, without recording anything."""
        if (reason := await self.store.disabled(d.url)) is not None:
            return Verdict(DeliveryState.DISABLED, d.attempts, error=f"endpoint disabled: {reason}")
        secrets = self.secrets_for(d)
        if secrets is None:
            return Verdict(DeliveryState.REFUSED, d.attempts, error=f"subscription {d.subscription!r} was removed")
        if not secrets:  # never send unsigned: hold the delivery until a secret is configured
            return Verdict(None, d.attempts, error="no signing secret configured", retry_at=self.clock() + HOLD_SECONDS)
        try:
            addresses = await check_url(d.url, self.policy)
        except UnresolvableHostError as exc:
            return self.judge(d, Answer(None, error=str(exc)))
        except UnsafeURLError as exc:
            return Verdict(DeliveryState.REFUSED, d.attempts, error=f"refused by the SSRF guard: {exc}")
        return self.judge(d, await self.send(d, addresses, secrets))

    def secrets_for(self, d: Delivery) -> tuple[str, ...] | None:
        """A callback of a tenant with its own webhook secrets is signed with those (all of them, during a
        rotation); operator subscriptions, and tenants without secrets of their own, with the operator's."""
        if d.subscription is None and self.keys is not None:
            tenant = tenant_of(d.completion.body)
            own = self.keys.current().webhook_secrets.get(tenant) if tenant else None
            if own:
                return own
        return self.settings.secrets_for(d.subscription)

    def judge(self, d: Delivery, answer: Answer) -> Verdict:
        """2xx delivered, 410 gone, else a retry while the schedule lasts."""
        attempts = d.attempts + 1
        error = answer.error or (None if answer.ok else f"HTTP {answer.status}")
        if answer.ok:
            return Verdict(DeliveryState.DELIVERED, attempts, answer.status)
        if answer.status == 410:
            return Verdict(DeliveryState.GONE, attempts, answer.status, "HTTP 410 Gone: endpoint disabled")
        retry_after = None
        if answer.status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(answer.retry_after, datetime.now(UTC))
        s = self.settings
        delay = next_delay(
            attempts,
            s.retry_schedule,
            jitter=s.jitter,
            retry_after=retry_after,
            max_retry_after=s.max_retry_after,
            rng=self.rng,
        )
        if delay is None:
            return Verdict(DeliveryState.FAILED, attempts, answer.status, f"{attempts} attempts failed, last: {error}")
        return Verdict(None, attempts, answer.status, error, self.clock() + delay)

    async def send(self, d: Delivery, addresses: list[IPAddress], secrets: tuple[str, ...]) -> Answer:
        """One signed POST in a CLIENT span that continues the job's trace."""
        attributes = {"http.request.method": "POST", "url.full": redacted(d.url), JOB_ID_ATTRIBUTE: d.completion.job_id}
        tracer = trace.get_tracer("jobrelay.notifier")
        parent = extract_context(d.completion.headers)
        with tracer.start_as_current_span("POST", context=parent, kind=SpanKind.CLIENT, attributes=attributes) as span:
            headers = self._headers(d, secrets)
            propagate.inject(headers)  # traceparent: the receiver's work joins the job's trace
            answer = await self._timed_post(d, addresses, headers)
            if answer.status is not None:
                span.set_attribute("http.response.status_code", answer.status)
            if not answer.ok:
                span.set_status(StatusCode.ERROR, answer.error or f"HTTP {answer.status}")
            log.info("webhook attempt", attempt=d.attempts + 1, status=answer.status, error=answer.error)
        ATTEMPTS.labels(_result_label(answer)).inc()
        return answer

    def _headers(self, d: Delivery, secrets: tuple[str, ...]) -> dict[str, str]:
        signed = signature_headers(d.webhook_id, d.completion.body, secrets, datetime.now(UTC))
        return {"content-type": "application/json", "user-agent": self.settings.user_agent, **signed}

    async def _timed_post(self, d: Delivery, addresses: list[IPAddress], headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        with IN_FLIGHT.track_inprogress():
            answer = await post_pinned(
                self.client, d.url, addresses, headers, d.completion.body, self.settings.request_timeout
            )
        ATTEMPT_SECONDS.observe(time.monotonic() - started)
        return answer

    async def record(self, d: Delivery, v: Verdict) -> None:
        """Store the verdict; a 410 also disables the URL for every later delivery."""
        if v.state is None:
            assert v.retry_at is not None  # noqa: S101 - a retry verdict always carries its time
            await self.store.retry_later(d.id, attempts=v.attempts, at=v.retry_at, status=v.status, error=v.error or "")
            log.info("webhook retry scheduled", attempts=v.attempts, in_seconds=round(v.retry_at - self.clock(), 3))
            return
        if v.state is DeliveryState.GONE:
            await self.store.disable_url(d.url, 410, f"answered 410 Gone to {d.webhook_id}", self.clock())
        await self.store.finish(d.id, v.state, attempts=v.attempts, status=v.status, error=v.error)
        DELIVERIES.labels(v.state.value).inc()
        level = log.info if v.state is DeliveryState.DELIVERED else log.warning
        level("webhook delivery finished", outcome=v.state.value, attempts=v.attempts, error=v.error)
