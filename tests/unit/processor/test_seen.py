"""The seen index: every job id of the dedupe window is remembered, in bounded memory (real SQLite)."""

from __future__ import annotations

import time
import uuid

from jobrelay.processor.seen import SeenIndex


def test_every_id_is_remembered_across_the_move_to_disk() -> None:
    index = SeenIndex(window_s=3600)
    ids = [str(uuid.uuid4()) for _ in range(12_000)]  # more than the in-memory batch: most live on disk
    for n, job_id in enumerate(ids):
        index.put(job_id, f"h{n}")
    index.put(ids[0], "h0")  # re-read from history on a takeover: still one entry
    assert len(index) == len(ids)
    assert index.get(ids[0]) == "h0" and index.get(ids[-1]) == f"h{len(ids) - 1}"
    assert index.get(str(uuid.uuid4())) is None
    index.close()


def test_a_prefetched_batch_answers_hits_and_misses_like_single_lookups() -> None:
    index = SeenIndex(window_s=3600)
    old = [str(uuid.uuid4()) for _ in range(6_000)]
    for job_id in old:
        index.put(job_id, "old")
    new = [str(uuid.uuid4()) for _ in range(3)]
    index.prefetch([*old[:10], *new])
    assert [index.get(job_id) for job_id in old[:10]] == ["old"] * 10
    assert [index.get(job_id) for job_id in new] == [None] * 3
    index.put(new[0], "just admitted")  # a duplicate later in the same batch is caught
    assert index.get(new[0]) == "just admitted"
    assert index.get(old[-1]) == "old", "an id outside the prefetched batch is still looked up"
    index.close()


def test_ids_older_than_the_window_are_forgotten_and_non_uuid_ids_work() -> None:
    index = SeenIndex(window_s=60)
    hour_ago = int((time.time() - 3600) * 1000)
    stale = [str(uuid.uuid4()) for _ in range(5_000)]
    for job_id in stale:
        index.put(job_id, "stale", at_ms=hour_ago)  # e.g. read from job-completed history on takeover
    fresh = [str(uuid.uuid4()) for _ in range(5_000)]
    for job_id in fresh:
        index.put(job_id, "fresh")
    index.put("not-a-uuid", "x")
    assert index.get(stale[0]) is None, "outside the dedupe window"
    assert index.get(fresh[0]) == "fresh" and index.get("not-a-uuid") == "x"
    index.close()
