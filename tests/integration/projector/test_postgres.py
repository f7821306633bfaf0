"""The projector with its view in PostgreSQL (store=postgres), against the real broker."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from jobrelay.messaging.clients import EventProducer
from tests.integration.projector.conftest import Start, job_of, life, wait_for_status

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [tuple(record) for record in await connection.fetch(query)]
    finally:
        await connection.close()


async def test_the_projector_serves_a_view_kept_in_postgres_and_a_second_one_resumes_from_it(
    postgres_dsn: str, start_projector: Start, publisher: EventProducer
) -> None:
    # postgres_dsn first: its schema is dropped after the projector (a later fixture) has stopped.
    client = await start_projector(store="postgres", postgres_dsn=postgres_dsn)
    events = life()
    for event in events:
        await publisher.publish(event)
    done = await wait_for_status(client, job_of(events), "succeeded")
    assert (done["result"], done["progress"]) == ({"answer": 42}, 100.0)
    listed = (await client.get("/v1/jobs", params={"status": "succeeded"})).json()
    assert [job["id"] for job in listed["items"]] == [job_of(events)]
    assert await _rows(postgres_dsn, "SELECT id, status FROM jobs") == [(job_of(events), "SUCCEEDED")]
    (stored,) = await _rows(postgres_dsn, "SELECT sum(next_offset) FROM positions")
    assert stored == (len(events),), "each applied record's position is stored with the rows"

    # A second projector on the same view starts from the stored positions: once it has caught up
    # with every partition (lag 0), it has applied nothing again.
    again = await start_projector(store="postgres", postgres_dsn=postgres_dsn, ready_max_lag=0)
    deadline = time.monotonic() + 30
    while (await again.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the second projector never caught up"
        await asyncio.sleep(0.05)
    assert (await again.get(f"/v1/jobs/{job_of(events)}")).json()["status"] == "succeeded"
    assert await _rows(postgres_dsn, "SELECT applied FROM jobs") == [(len(events),)], "nothing applied twice"
