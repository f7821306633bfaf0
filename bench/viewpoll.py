"""Submit → the job's row showing `succeeded` in the projector's status view.

The projector's SQLite view is read directly, read-only (`mode=ro`; WAL lets a reader run beside
the writer without blocking it), by one thread that looks up only the ids submitted and not yet
seen succeeded, by primary key, every few milliseconds. Why not the HTTP API: a `Prefer: wait`
long-poll or an SSE stream per job would hold one request per job in flight (hundreds at the
offered loads, thousands at saturation) in the projector, on the same two cores, and measure the
API's cost instead of how fresh the view is. A row visible to this reader is what
`GET /v1/jobs/{id}` answers next (the API reads the same database).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from bench.loadgen import CompletionLog, Submit

__all__ = ["ViewPoller", "succeeded_among"]

_CHUNK = 500  # ids per query: well under SQLite's variable limit


def succeeded_among(db: sqlite3.Connection, ids: list[str]) -> list[str]:
    """Those of `ids` whose row in the view says SUCCEEDED."""
    found: list[str] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT id FROM jobs WHERE status = 'SUCCEEDED' AND id IN ({marks})"  # noqa: S608 - only '?'s
        found += [row[0] for row in db.execute(query, chunk)]
    return found


class ViewPoller:
    """Marks jobs complete in `log` when their row in the view says succeeded."""

    def __init__(self, db_path: Path, log: CompletionLog, interval: float = 0.005) -> None:
        self.db_path, self.log, self.interval = db_path, log, interval
        self._waiting: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def watch(self, submit: Submit) -> Submit:
        """`submit`, also remembering each job id to look for in the view."""

        async def watched(index: int) -> str:
            job_id = await submit(index)
            with self._lock:
                self._waiting.add(job_id)
            return job_id

        return watched

    def poll_once(self, db: sqlite3.Connection) -> int:
        """One look at the view; returns how many jobs were newly seen succeeded."""
        with self._lock:
            ids = list(self._waiting)
        if not ids:
            return 0
        found = succeeded_among(db, ids)
        for job_id in found:
            self.log.complete(job_id)
        with self._lock:
            self._waiting.difference_update(found)
        return len(found)

    def _connect(self, deadline: float) -> sqlite3.Connection:
        while True:  # the projector creates the file when it starts; bounded by `deadline`
            try:
                db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False)
                db.execute("SELECT 1 FROM jobs LIMIT 1")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return db

    def _run(self, db: sqlite3.Connection) -> None:
        with closing(db):
            while not self._stop.wait(self.interval):
                self.poll_once(db)

    @contextmanager
    def running(self, connect_timeout: float = 30.0) -> Iterator[None]:
        """Poll in a background thread while the context is open."""
        db = self._connect(time.monotonic() + connect_timeout)
        thread = threading.Thread(target=self._run, args=(db,), name="view-poller", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=10)
