"""Per-partition offset bookkeeping for out-of-order completion, kept in the commit metadata.

Jobs of one partition finish in any order, but Kafka keeps one committed offset per partition.
The ledger commits the lowest unfinished offset and records in the commit's metadata string what
lies above it: which offsets are already finished (so a restart does not run them again) and
which jobs were started, at which attempt, and when their scheduled retry is due (so the next
owner runs attempt k+1, and a crash re-run sorts after the old attempt's events). The metadata is
committed in the same Kafka transaction as the events that caused it, so the two never disagree.

Format (`jr1;<done>;<entries>`): `<done>` is a base64 bitmap of finished offsets relative to the
committed offset; `<entries>` is a comma-separated list of `rel.attempt[.retry_at_ms]`.
"""

from __future__ import annotations

import base64
import heapq
from dataclasses import dataclass

__all__ = ["Attempted", "Ledger"]

_VERSION = "jr1"
_PRUNE_AT = 4096  # finished offsets kept before those below the commit point are dropped


@dataclass(frozen=True, slots=True)
class Attempted:
    """Attempt `attempt` of a job was started; `retry_at_ms` is set once its retry is scheduled."""

    attempt: int
    retry_at_ms: int | None = None


class Ledger:
    """Which offsets of one partition are unfinished, finished or attempted."""

    def __init__(self, committed: int) -> None:
        self._position = committed  # next offset expected from the broker
        self._pending: set[int] = set()  # received, not finished
        self._lowest: list[int] = []  # heap of pending offsets (finished ones are popped lazily)
        self._done: set[int] = set()  # finished above the commit point
        self._attempts: dict[int, Attempted] = {}

    @classmethod
    def restore(cls, committed: int, metadata: str) -> Ledger:
        """The ledger a previous owner committed (an empty one for foreign or missing metadata)."""
        ledger = cls(committed)
        parts = metadata.split(";")
        if len(parts) != 3 or parts[0] != _VERSION:
            return ledger
        bits = int.from_bytes(base64.b64decode(parts[1]), "little") if parts[1] else 0
        ledger._done = {committed + rel for rel in range(bits.bit_length()) if bits >> rel & 1}
        for entry in filter(None, parts[2].split(",")):
            rel, attempt, *retry = (int(field) for field in entry.split("."))
            ledger._attempts[committed + rel] = Attempted(attempt, retry[0] if retry else None)
        return ledger

    def is_done(self, offset: int) -> bool:
        """Whether `offset` was finished already (possibly by a previous owner)."""
        return offset in self._done

    def previous_attempt(self, offset: int) -> Attempted | None:
        """The last attempt recorded for `offset`, if any."""
        return self._attempts.get(offset)

    def received(self, offset: int) -> None:
        """`offset` arrived and is not finished yet."""
        if offset not in self._pending:
            self._pending.add(offset)
            heapq.heappush(self._lowest, offset)
        self._position = max(self._position, offset + 1)

    def attempted(self, offset: int, attempt: Attempted) -> None:
        """Record that `attempt` of the job at `offset` started (or failed and awaits its retry)."""
        self._attempts[offset] = attempt

    def finish(self, offset: int) -> None:
        """The job at `offset` is finished: its outcome goes out in the same transaction."""
        self._position = max(self._position, offset + 1)
        self._pending.discard(offset)
        self._attempts.pop(offset, None)
        self._done.add(offset)
        if len(self._done) > _PRUNE_AT:  # offsets below the commit point are done for good: forget them
            point = self.commit_point()
            self._done = {o for o in self._done if o >= point}

    def commit_point(self) -> int:
        """The offset to commit: the lowest unfinished one (everything below it is finished)."""
        lowest, pending = self._lowest, self._pending
        while lowest and lowest[0] not in pending:
            heapq.heappop(lowest)
        return lowest[0] if lowest else self._position

    @property
    def pending(self) -> int:
        """How many received offsets are unfinished."""
        return len(self._pending)

    @property
    def window(self) -> int:
        """How many offsets lie between the commit point and the next offset expected."""
        return self._position - self.commit_point()

    def metadata(self) -> str:
        """The state above the commit point, as the commit metadata string."""
        point = self.commit_point()
        above = [o - point for o in self._done if o >= point]
        bitmap = bytearray(max(above) // 8 + 1 if above else 0)  # bit n of byte n // 8: little-endian
        for rel in above:
            bitmap[rel >> 3] |= 1 << (rel & 7)
        done = base64.b64encode(bitmap).decode() if above else ""
        entries = ",".join(
            f"{o - point}.{a.attempt}" + (f".{a.retry_at_ms}" if a.retry_at_ms is not None else "")
            for o, a in sorted(self._attempts.items())
            if o >= point
        )
        return f"{_VERSION};{done};{entries}"
