"""The delivery store's contract, run against every adapter (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobrelay.notifier.store import Completion, DeliveryState, DeliveryStore, NewDelivery
from jobrelay.notifier.store.postgres import PostgresDeliveryStore
from jobrelay.notifier.store.sqlite import SqliteDeliveryStore


def _completion(n: int, partition: int = 0) -> Completion:
    headers = (("traceparent", b"00-ab"), ("x", None))
    return Completion(
        f"evt-{n}",
        f"job-{n}",
        "report.generate",
        b'{"type":"job.completed"}',
        "job-completed",
        partition,
        n,
        f"job-{n}".encode(),
        b"\xc3\x01avro",
        headers,
    )


class DeliveryStoreContract:
    """What every DeliveryStore must do; subclasses provide the `store` fixture."""

    async def test_recording_the_same_completion_again_adds_nothing(self, store: DeliveryStore) -> None:
        batch = [(_completion(1), [NewDelivery("https://a.example/h"), NewDelivery("https://b.example/h", "b")])]
        assert await store.record(batch, {("job-completed", 0): 2}, now=100.0) == 2
        assert await store.record(batch, {("job-completed", 0): 2}, now=101.0) == 0
        due = await store.due(now=100.0, limit=10, per_host=10)
        assert [(d.url, d.subscription, d.webhook_id, d.attempts) for d in due] == [
            ("https://a.example/h", None, "evt-1", 0),
            ("https://b.example/h", "b", "evt-1", 0),
        ]
        assert due[0].completion == _completion(1), "the record's bytes and headers come back exactly"

    async def test_offsets_only_move_forward(self, store: DeliveryStore) -> None:
        await store.record([], {("job-completed", 0): 5, ("job-completed", 1): 3}, now=1.0)
        await store.record([], {("job-completed", 0): 4}, now=2.0)
        assert await store.offsets() == {("job-completed", 0): 5, ("job-completed", 1): 3}

    async def test_due_deliveries_come_oldest_first_at_most_n_per_host(self, store: DeliveryStore) -> None:
        slow = [(_completion(n), [NewDelivery("https://slow.example/h")]) for n in range(5)]
        await store.record(slow, {}, now=10.0)
        await store.record([(_completion(9), [NewDelivery("https://fast.example/h")])], {}, now=20.0)
        due = await store.due(now=30.0, limit=3, per_host=2)
        assert [d.completion.event_id for d in due] == ["evt-0", "evt-1", "evt-9"], "the slow host cannot fill it"
        assert await store.due(now=5.0, limit=10, per_host=10) == []

    async def test_a_retry_is_due_at_its_time_and_not_before(self, store: DeliveryStore) -> None:
        await store.record([(_completion(1), [NewDelivery("https://a.example/h")])], {}, now=1.0)
        (delivery,) = await store.due(now=1.0, limit=1, per_host=1)
        await store.retry_later(delivery.id, attempts=1, at=50.0, status=503, error="HTTP 503")
        assert await store.due(now=49.0, limit=1, per_host=1) == []
        assert await store.next_due_at(after=10.0) == 50.0
        (again,) = await store.due(now=50.0, limit=1, per_host=1)
        assert (again.attempts, again.last_status, again.last_error) == (1, 503, "HTTP 503")

    async def test_a_final_failure_waits_in_the_outbox_until_published(self, store: DeliveryStore) -> None:
        await store.record([(_completion(n), [NewDelivery(f"https://{n}.example/h")]) for n in (1, 2)], {}, now=1.0)
        first, second = await store.due(now=1.0, limit=2, per_host=1)
        await store.finish(first.id, DeliveryState.DELIVERED, attempts=1, status=200, error=None)
        await store.finish(second.id, DeliveryState.FAILED, attempts=7, status=500, error="7 attempts failed")
        (letter,) = await store.dead_letters_pending(limit=10)
        assert (letter.id, letter.state, letter.attempts, letter.last_status) == (
            second.id,
            DeliveryState.FAILED,
            7,
            500,
        )
        await store.dead_lettered(letter.id)
        assert await store.dead_letters_pending(limit=10) == []
        assert await store.counts() == {DeliveryState.DELIVERED: 1, DeliveryState.FAILED: 1}
        assert await store.due(now=99.0, limit=10, per_host=10) == [], "final states are never due again"

    async def test_a_disabled_url_stays_disabled(self, store: DeliveryStore) -> None:
        assert await store.disabled("https://a.example/h") is None
        await store.disable_url("https://a.example/h", 410, "answered 410 Gone", now=1.0)
        assert await store.disabled("https://a.example/h") == "answered 410 Gone"
        assert await store.disabled("https://a.example/other") is None

    async def test_an_operator_sees_a_jobs_deliveries_and_can_enable_a_url_again(self, store: DeliveryStore) -> None:
        urls = [NewDelivery("https://a.example/h"), NewDelivery("https://b.example/h", "b")]
        await store.record([(_completion(1), urls), (_completion(2), [NewDelivery("https://c.example/h")])], {}, 1.0)
        first, second = await store.deliveries_of("job-1")
        assert [(d.url, d.state, d.completion.job_id) for d in (first, second)] == [
            ("https://a.example/h", DeliveryState.PENDING, "job-1"),
            ("https://b.example/h", DeliveryState.PENDING, "job-1"),
        ]
        assert await store.deliveries_of("job-unknown") == []
        await store.disable_url("https://a.example/h", 410, "answered 410 Gone", now=2.0)
        assert await store.enable_url("https://a.example/h") is True
        assert await store.disabled("https://a.example/h") is None
        assert await store.enable_url("https://a.example/h") is False, "it was not disabled any more"

    async def test_text_with_any_characters_comes_back_exactly(self, store: DeliveryStore) -> None:
        odd = Completion(
            "evt\x00\\0",
            "job\x00\\",
            "type\x00",
            b"\x00body",
            "job-completed",
            0,
            1,
            None,
            b"\x00",
            (("name\x00\\", b"\x00"), ("x", None)),
        )
        url = "https://odd.example/h?\x00=\\0"
        await store.record([(odd, [NewDelivery(url, "sub\x00")])], {}, now=1.0)
        (delivery,) = await store.due(now=1.0, limit=5, per_host=5)
        assert (delivery.completion, delivery.url, delivery.subscription) == (odd, url, "sub\x00")
        assert [d.id for d in await store.deliveries_of("job\x00\\")] == [delivery.id]
        await store.finish(delivery.id, DeliveryState.GONE, attempts=1, status=410, error="said \x00\\0")
        (letter,) = await store.dead_letters_pending(limit=5)
        assert letter.last_error == "said \x00\\0"
        await store.disable_url(url, 410, "gone \x00", now=2.0)
        assert await store.disabled(url) == "gone \x00" and await store.disabled("https://odd.example/h?") is None


class TestSqliteDeliveryStore(DeliveryStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[DeliveryStore]:
        store = await SqliteDeliveryStore.open(tmp_path / "notifier.sqlite3")
        yield store
        await store.close()

    async def test_everything_survives_reopening(self, tmp_path: Path) -> None:
        store = await SqliteDeliveryStore.open(tmp_path / "n.sqlite3")
        await store.record([(_completion(1), [NewDelivery("https://a.example/h")])], {("t", 0): 2}, now=1.0)
        await store.disable_url("https://gone.example/h", 410, "gone", now=1.0)
        await store.close()
        reopened = await SqliteDeliveryStore.open(tmp_path / "n.sqlite3")
        try:
            assert [d.webhook_id for d in await reopened.due(now=2.0, limit=5, per_host=5)] == ["evt-1"]
            assert (await reopened.offsets(), await reopened.disabled("https://gone.example/h")) == (
                {("t", 0): 2},
                "gone",
            )
        finally:
            await reopened.close()


@pytest.mark.postgres
class TestPostgresDeliveryStore(DeliveryStoreContract):
    @pytest.fixture
    async def store(self, postgres_dsn: str) -> AsyncIterator[DeliveryStore]:
        store = await PostgresDeliveryStore.open(postgres_dsn)
        yield store
        await store.close()

    async def test_everything_survives_reopening(self, postgres_dsn: str) -> None:
        store = await PostgresDeliveryStore.open(postgres_dsn)
        await store.record([(_completion(1), [NewDelivery("https://a.example/h")])], {("t", 0): 2}, now=1.0)
        await store.disable_url("https://gone.example/h", 410, "gone", now=1.0)
        await store.close()
        reopened = await PostgresDeliveryStore.open(postgres_dsn)
        try:
            assert [d.webhook_id for d in await reopened.due(now=2.0, limit=5, per_host=5)] == ["evt-1"]
            assert (await reopened.offsets(), await reopened.disabled("https://gone.example/h")) == (
                {("t", 0): 2},
                "gone",
            )
        finally:
            await reopened.close()


@pytest.mark.postgres
class TestPostgresClaims:
    """Two notifier replicas on one PostgreSQL state: who attempts what (times are the `now` given)."""

    @pytest.fixture
    async def replicas(self, postgres_dsn: str) -> AsyncIterator[tuple[PostgresDeliveryStore, PostgresDeliveryStore]]:
        a = await PostgresDeliveryStore.open(postgres_dsn, owner="a", lease_s=30.0)
        b = await PostgresDeliveryStore.open(postgres_dsn, owner="b", lease_s=30.0)
        yield a, b
        await a.close()
        await b.close()

    async def test_a_claimed_delivery_goes_to_one_replica_until_its_lease_runs_out(
        self, replicas: tuple[PostgresDeliveryStore, PostgresDeliveryStore]
    ) -> None:
        a, b = replicas
        await a.record([(_completion(n), [NewDelivery(f"https://{n}.example/h")]) for n in range(4)], {}, now=100.0)
        mine = await a.due(now=100.0, limit=2, per_host=5)
        theirs = await b.due(now=100.0, limit=10, per_host=5)
        assert [d.webhook_id for d in mine] == ["evt-0", "evt-1"]
        assert [d.webhook_id for d in theirs] == ["evt-2", "evt-3"], "never one already claimed"
        assert await a.due(now=129.0, limit=10, per_host=5) == [], "every delivery is under a live claim"
        for delivery in mine:
            await a.finish(delivery.id, DeliveryState.DELIVERED, attempts=1, status=200, error=None)
        taken_over = await a.due(now=131.0, limit=10, per_host=5)  # b died: its lease ran out
        assert [d.webhook_id for d in taken_over] == ["evt-2", "evt-3"]

    async def test_a_verdict_a_retry_or_a_release_ends_the_claim(
        self, replicas: tuple[PostgresDeliveryStore, PostgresDeliveryStore]
    ) -> None:
        a, b = replicas
        await a.record([(_completion(n), [NewDelivery(f"https://{n}.example/h")]) for n in range(3)], {}, now=1.0)
        first, second, third = await a.due(now=1.0, limit=3, per_host=5)
        await a.finish(first.id, DeliveryState.DELIVERED, attempts=1, status=200, error=None)
        await a.retry_later(second.id, attempts=1, at=5.0, status=503, error="HTTP 503")
        await a.release([third.id])
        assert [d.id for d in await b.due(now=2.0, limit=10, per_host=5)] == [third.id]
        assert [d.id for d in await b.due(now=5.0, limit=10, per_host=5)] == [second.id]

    async def test_the_per_host_limit_counts_every_replicas_claims(
        self, replicas: tuple[PostgresDeliveryStore, PostgresDeliveryStore]
    ) -> None:
        a, b = replicas
        batch = [(_completion(n), [NewDelivery("https://slow.example/h")]) for n in range(5)]
        await a.record([*batch, (_completion(9), [NewDelivery("https://other.example/h")])], {}, now=1.0)
        assert len(await a.due(now=1.0, limit=1, per_host=2)) == 1
        theirs = await b.due(now=1.0, limit=10, per_host=2)
        assert [d.host for d in theirs] == ["slow.example:", "other.example:"], "one slot of slow.example was left"
        assert await a.due(now=1.0, limit=10, per_host=2) == []

    async def test_each_dead_letter_is_handed_to_one_replica(
        self, replicas: tuple[PostgresDeliveryStore, PostgresDeliveryStore]
    ) -> None:
        a, b = replicas
        await a.record([(_completion(1), [NewDelivery("https://a.example/h")])], {}, now=1.0)
        (delivery,) = await a.due(now=1.0, limit=1, per_host=1)
        await a.finish(delivery.id, DeliveryState.FAILED, attempts=3, status=500, error="3 attempts failed")
        assert [d.id for d in await a.dead_letters_pending(limit=10)] == [delivery.id]
        assert await b.dead_letters_pending(limit=10) == [], "a's claim holds"
        assert [d.id for d in await a.dead_letters_pending(limit=10)] == [delivery.id], "a may try again"
        await a.dead_lettered(delivery.id)
        assert await b.dead_letters_pending(limit=10) == []

    async def test_a_clean_stop_hands_back_its_claims_at_once(self, postgres_dsn: str) -> None:
        a = await PostgresDeliveryStore.open(postgres_dsn, owner="a", lease_s=30.0)
        b = await PostgresDeliveryStore.open(postgres_dsn, owner="b", lease_s=30.0)
        try:
            await a.record([(_completion(1), [NewDelivery("https://a.example/h")])], {}, now=1.0)
            assert len(await a.due(now=1.0, limit=1, per_host=1)) == 1
            await a.close()
            assert [d.webhook_id for d in await b.due(now=2.0, limit=1, per_host=1)] == ["evt-1"]
        finally:
            await b.close()
