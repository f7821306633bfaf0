"""Token buckets and stream slots: pure code on a fake clock."""

from __future__ import annotations

import pytest

from jobrelay.http.limits import Buckets, StreamSlots
from jobrelay.http.problems import Problem


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_and_says_when_the_next_token_comes() -> None:
    clock = Clock()
    buckets = Buckets(2, 3, what="submitting jobs", clock=clock)
    for _ in range(3):
        buckets.take("acme")
    with pytest.raises(Problem) as refused:
        buckets.take("acme")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    buckets.take("globex")  # each key has its own bucket
    clock.now += 0.5  # one token at 2/s
    buckets.take("acme")
    with pytest.raises(Problem):
        buckets.take("acme")
    clock.now += 60
    for _ in range(3):  # refilled to the burst, no further
        buckets.take("acme")
    with pytest.raises(Problem):
        buckets.take("acme")


def test_a_slow_rate_asks_for_a_longer_wait_never_zero() -> None:
    clock = Clock()
    buckets = Buckets(0.1, 1, what="x", clock=clock)
    buckets.take("k")
    with pytest.raises(Problem) as refused:
        buckets.take("k")
    assert refused.value.headers["Retry-After"] == "10"
    off = Buckets(0, 1, what="off", clock=clock)  # rate 0: no limit
    for _ in range(1000):
        off.take("k")


def test_stream_slots_cap_per_tenant_with_429_and_in_all_with_503_and_free_up() -> None:
    slots = StreamSlots(per_tenant=2, total=3)
    slots.acquire("a")
    with slots.slot("a"):
        with pytest.raises(Problem) as tenant:
            slots.acquire("a")
        assert tenant.value.status == 429
        slots.acquire("b")
        with pytest.raises(Problem) as total:
            slots.acquire("c")
        assert total.value.status == 503
    slots.acquire("a")  # the block's slot came back
    assert slots.open("a") == 2 and slots.open("b") == 1
