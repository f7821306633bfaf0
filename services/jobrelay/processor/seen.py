"""The jobs this process knows (job id → request hash), kept on disk so memory stays flat.

"A repeated request never runs twice" needs every job id of the dedupe window (24 h by default):
at thousands of jobs per second a dict of them grows by hundreds of MB a day. The index keeps the
newest entries in a small dict and moves them in batches to a SQLite file of its own (no WAL, no
fsync: it is a cache, rebuilt from job-completed whenever a partition is taken over), whose page
cache is bounded. Entries older than the window are deleted in insertion order, cheaply.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SeenIndex"]

_SCHEMA = """
CREATE TABLE seen (job_id BLOB NOT NULL, request_hash TEXT NOT NULL, at INTEGER NOT NULL);
CREATE UNIQUE INDEX seen_by_job ON seen (job_id);
"""
_BATCH = 5_000  # entries kept in memory before they move to the file
_CHUNK = 500  # ids per IN (…) query


def _key(job_id: str) -> bytes:
    try:
        return bytes.fromhex(job_id.replace("-", ""))  # a uuid in 16 bytes instead of 36 characters
    except ValueError:
        return job_id.encode()


class SeenIndex:
    """Job id → request hash for the dedupe window; bounded memory whatever the volume."""

    def __init__(self, window_s: float, directory: Path | None = None, cache_kib: int = 8192) -> None:
        self.window_s = window_s
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the index
            prefix="jobrelay-seen-", suffix=".sqlite", dir=directory, delete=True
        )
        self._db = sqlite3.connect(self._file.name, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{cache_kib}", "temp_store = MEMORY"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._recent: dict[bytes, tuple[str, int]] = {}
        self._hot: dict[bytes, str] = {}  # the file's answers for the ids of the batch in hand
        self._checked: set[bytes] = set()  # ids of the batch in hand that the file was asked about
        self._marks: list[tuple[int, int]] = []  # (last rowid, newest time in ms) of each batch moved

    def prefetch(self, job_ids: Iterable[str]) -> None:
        """Ask the file about a whole batch of ids at once (one query per 500, not one per id)."""
        keys = [key for key in map(_key, job_ids) if key not in self._recent]
        self._hot, self._checked = {}, set(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            sql = f"SELECT job_id, request_hash FROM seen WHERE job_id IN ({','.join('?' * len(chunk))})"  # noqa: S608
            self._hot.update(self._db.execute(sql, chunk).fetchall())

    def get(self, job_id: str) -> str | None:
        """The request hash of `job_id`, if known."""
        key = _key(job_id)
        hit = self._recent.get(key)
        if hit is not None:
            return hit[0]
        if key in self._checked:
            return self._hot.get(key)
        row = self._db.execute("SELECT request_hash FROM seen WHERE job_id = ?", (key,)).fetchone()
        return row[0] if row is not None else None

    def put(self, job_id: str, request_hash: str, at_ms: int | None = None) -> None:
        """Remember `job_id`: a new id, or one re-read from history with the hash it has (not checked here)."""
        key = _key(job_id)
        if key not in self._recent:
            self._recent[key] = (request_hash, at_ms if at_ms is not None else int(time.time() * 1000))
            if len(self._recent) >= _BATCH:
                self._move()

    def __len__(self) -> int:
        on_disk = {row[0] for row in self._db.execute("SELECT job_id FROM seen")}
        return len(on_disk | self._recent.keys())

    def _move(self) -> None:
        entries = [(key, value, at) for key, (value, at) in self._recent.items()]
        self._recent.clear()
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO seen (job_id, request_hash, at) VALUES (?, ?, ?)", entries)
        last = self._db.execute("SELECT max(rowid) FROM seen").fetchone()[0]
        self._db.execute("COMMIT")
        if last is not None:
            self._marks.append((int(last), max(at for _, _, at in entries)))
        self._prune()

    def _prune(self) -> None:
        cutoff = int((time.time() - self.window_s) * 1000)
        expired = [rowid for rowid, newest in self._marks if newest < cutoff]
        if expired:
            self._db.execute("DELETE FROM seen WHERE rowid <= ?", (expired[-1],))
            self._marks = self._marks[len(expired) :]

    def close(self) -> None:
        """Close and delete the file."""
        self._db.close()
        self._file.close()
