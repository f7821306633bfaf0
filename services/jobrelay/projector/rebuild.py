"""Rebuild: replay the four topics from the beginning into a fresh generation, then swap it in.

The replay (`replay.py`: librdkafka, folded in memory, each job's row written once) stops at the
end offsets taken when it started; the retention purge runs on the result, as on the live view;
the generation is checkpointed and closed, and only then does the `db_path` symlink move to it
(atomically). A running projector notices and switches over.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobrelay.config.settings import KafkaSettings, TopicSettings
from jobrelay.messaging.clients import make_codec
from jobrelay.projector.replay import replay
from jobrelay.projector.settings import ProjectorSettings
from jobrelay.projector.store import generations
from jobrelay.projector.store.sqlite import SqliteStore
from jobrelay.projector.workers import replay_in_workers

__all__ = ["RebuildReport", "rebuild"]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did."""

    generation: Path
    records: int
    seconds: float
    purged: int

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else float(self.records)


async def rebuild(
    settings: ProjectorSettings, kafka: KafkaSettings, topics: TopicSettings, *, swap: bool = True
) -> RebuildReport:
    """Replay everything into a new generation next to `settings.db_path`; swap it in unless told not to."""
    target = generations.new_generation(settings.db_path)
    store = await SqliteStore.open(target, bulk=True)
    try:
        started = time.perf_counter()
        # The replay's thread is the only user of this new generation: it writes without hops.
        if settings.rebuild_workers > 1:
            done = await asyncio.to_thread(
                replay_in_workers,
                kafka,
                topics,
                store,
                workers=settings.rebuild_workers,
                batch=settings.rebuild_batch_size,
                max_jobs=settings.rebuild_max_jobs,
            )
        else:
            done = await asyncio.to_thread(
                replay,
                kafka,
                topics,
                make_codec(kafka),
                store.update_now,
                max_jobs=settings.rebuild_max_jobs,
                batch=settings.rebuild_batch_size,
            )
        seconds = time.perf_counter() - started
        now = datetime.now(UTC)
        purged = await store.purge(now - settings.retention, now)
        await store.checkpoint()
    finally:
        await store.close()
    if swap:
        generations.swap(settings.db_path, target)
    return RebuildReport(target, done.records, seconds, len(purged))
