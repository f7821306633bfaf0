"""The SDK's backoff policy, on a fake clock: Retry-After, full jitter, the deadline, what is not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from jobrelay.sdk import (
    JobClient,
    JobNotFound,
    ProblemError,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    TransientError,
    WaitTimeout,
)


class FakeClock:
    """A monotonic clock that only moves when the retryer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def failing(*errors: Exception) -> tuple[Callable[[], str], list[int]]:
    """A call that raises `errors` in turn, then answers "ok"; and the count of calls made."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return call, calls


def unavailable(retry_after: float | None) -> ServiceUnavailable:
    return ServiceUnavailable(503, {"title": "Unavailable"}, retry_after)


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


def test_retry_after_is_honoured_for_503_and_429() -> None:
    clock = FakeClock()
    policy = RetryPolicy(clock=clock)
    call, calls = failing(unavailable(3), RateLimited(429, {}, 7), unavailable(2))
    assert policy.retrying(clock() + 60, sleep=clock.sleep)(call) == "ok"
    assert clock.sleeps == [3, 7, 2] and len(calls) == 4


def test_retry_after_is_capped() -> None:
    clock = FakeClock()
    policy = RetryPolicy(clock=clock, max_retry_after=10)
    call, _ = failing(unavailable(3600))
    assert policy.retrying(clock() + 60, sleep=clock.sleep)(call) == "ok"
    assert clock.sleeps == [10]


def test_without_retry_after_pauses_are_full_jitter_in_a_doubling_window() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial=0.5, maximum=4, clock=clock)
    errors = [refused(), httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("peer closed connection")]
    call, calls = failing(*errors * 4, TransientError(502, {}, None), TransientError(504, {}, None))
    assert policy.retrying(clock() + 3600, sleep=clock.sleep)(call) == "ok"
    windows = [min(4, 0.5 * 2**n) for n in range(len(clock.sleeps))]
    assert len(calls) == 15
    assert all(0 <= pause <= window for pause, window in zip(clock.sleeps, windows, strict=True)), clock.sleeps
    assert len(set(clock.sleeps)) > 1, "jittered, not fixed"


def test_the_deadline_is_respected_and_the_last_try_is_made_at_it() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial=1, maximum=2, clock=clock)
    start = clock()
    call, calls = failing(*[refused() for _ in range(1000)])
    with pytest.raises(httpx.ConnectError):
        policy.retrying(start + 10, sleep=clock.sleep)(call)
    assert clock.now == pytest.approx(start + 10), "kept trying until the deadline, and no longer"
    assert len(calls) > 5


def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    clock = FakeClock()
    policy = RetryPolicy(clock=clock)
    call, calls = failing(unavailable(30))
    with pytest.raises(ServiceUnavailable) as caught:
        policy.retrying(clock() + 5, sleep=clock.sleep)(call)
    assert caught.value.retry_after == 30 and len(calls) == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        JobNotFound(404, {"title": "Not Found"}),
        ProblemError(401, {"title": "Unauthorized"}),
        ProblemError(403, {"title": "Forbidden"}),
        ProblemError(422, {"title": "Unprocessable", "errors": [{"field": "query.wait"}]}),
        ProblemError(500, {"title": "Internal Server Error"}),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"),
    ],
)
def test_errors_that_another_try_cannot_fix_are_raised_at_once(error: Exception) -> None:
    clock = FakeClock()
    policy = RetryPolicy(clock=clock)
    call, calls = failing(error)
    with pytest.raises(type(error)) as caught:
        policy.retrying(clock() + 60, sleep=clock.sleep)(call)
    assert caught.value is error and len(calls) == 1 and clock.sleeps == []


def test_the_async_retryer_follows_the_same_policy() -> None:
    clock = FakeClock()
    policy = RetryPolicy(clock=clock)
    errors = iter([unavailable(4), refused()])

    async def call() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    async def run() -> str:
        result: str = await policy.aretrying(clock() + 60, sleep=clock.asleep)(call)
        return result

    assert asyncio.run(run()) == "ok"
    assert clock.sleeps[0] == 4 and 0 <= clock.sleeps[1] <= policy.initial * 2


def _running(request: httpx.Request) -> httpx.Response:
    body = {"id": "job-1", "type": "demo.sleep", "status": "running", "progress": 50, "message": "step 2 of 4"}
    return httpx.Response(200, json=body, headers={"ETag": '"v2"'})


def test_wait_rides_out_errors_and_its_timeout_says_what_it_last_saw() -> None:
    answers: list[Callable[[httpx.Request], httpx.Response]] = [_running]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop(0)(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    policy = RetryPolicy(initial=0.05)
    with (
        JobClient(status_base_url="http://status", http=http, retry_policy=policy) as client,
        pytest.raises(WaitTimeout) as caught,
    ):
        client.wait("job-1", timeout=1.0)
    error = caught.value
    assert error.last is not None and error.last.status == "running"
    assert isinstance(error.error, httpx.ConnectError)
    assert str(error) == (
        "job job-1 did not finish within 1s; last status: running 50% (step 2 of 4); "
        "the last try failed: ConnectError: [Errno 111] Connection refused"
    )


def test_wait_gets_past_a_503_and_a_429_then_returns_the_outcome() -> None:
    done = {"id": "job-1", "type": "demo.echo", "status": "succeeded", "result": {"echo": 1}}
    answers = [
        httpx.Response(503, json={"title": "Starting"}, headers={"Retry-After": "0"}),
        httpx.Response(429, json={"title": "Too Many Requests"}, headers={"Retry-After": "0"}),
        httpx.Response(200, json=done),
    ]
    http = httpx.Client(transport=httpx.MockTransport(lambda request: answers.pop(0)))
    with JobClient(status_base_url="http://status", http=http) as client:
        view = client.wait("job-1", timeout=5)
    assert view.status == "succeeded" and view.result == {"echo": 1} and not answers


def test_wait_raises_a_404_at_once() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"title": "Not Found", "detail": "no job job-1"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with JobClient(status_base_url="http://status", http=http) as client, pytest.raises(JobNotFound):
        client.wait("job-1", timeout=30)
    assert len(seen) == 1
