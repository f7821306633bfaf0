"""Each row's ratio to the limit and to the peer. Pure code.

References are medians over runs: of the rows the limit scenario marks `reference` (at an
offered load, only where the limit kept up), and of the peer's rows. Throughput at saturation:
the broker's own ProducerPerformance, and the peer. Latency: p99 at the *same offered load*, of
the raw aiokafka produce→consume loop, and of the peer. Where several cases qualify, the best
one is the reference. A row is never compared with its own case; limit rows are not divided by
the peer (that is the peer's row read backwards), and info rows get no ratios.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench.scenario import Measurement, Role

__all__ = ["Ratios", "References", "ratios", "references"]

CaseKey = tuple[str, str]  # (scenario, case)


@dataclass(frozen=True, slots=True)
class Ratios:
    """Throughput ratio (higher is better) and p99 ratio (lower is better), where they apply."""

    thr_vs_limit: float | None = None
    p99_vs_limit: float | None = None
    thr_vs_peer: float | None = None
    p99_vs_peer: float | None = None


@dataclass(frozen=True, slots=True)
class _Best:
    case: CaseKey
    value: float


@dataclass(frozen=True, slots=True)
class References:
    """The values rows are divided by: saturation throughput, and p99 per offered load."""

    limit_throughput: _Best | None = None
    peer_throughput: _Best | None = None
    limit_p99: dict[float, _Best] = field(default_factory=dict)
    peer_p99: dict[float, _Best] = field(default_factory=dict)


def _medians(rows: Iterable[Measurement], value: str) -> dict[tuple[CaseKey, float | None], float]:
    groups: dict[tuple[CaseKey, float | None], list[float]] = defaultdict(list)
    for row in rows:
        number = row.throughput if value == "throughput" else (row.latency.p99 if row.latency else None)
        if number is not None:
            groups[((row.scenario, row.case), row.offered)].append(number)
    return {key: statistics.median(values) for key, values in groups.items()}


def _eligible(row: Measurement, role: Role) -> bool:
    return row.role == role and (row.reference or role != "limit")


def _best_throughput(rows: Sequence[Measurement], role: Role) -> _Best | None:
    picked = [r for r in rows if _eligible(r, role) and r.mode == "saturation"]
    medians = _medians(picked, "throughput")
    if not medians:
        return None
    (case, _), value = max(medians.items(), key=lambda item: item[1])
    return _Best(case, value)


def _best_p99(rows: Sequence[Measurement], role: Role) -> dict[float, _Best]:
    picked = [
        r
        for r in rows
        if _eligible(r, role) and r.mode == "open" and r.offered is not None and (r.kept_up or role != "limit")
    ]
    best: dict[float, _Best] = {}
    for (case, offered), value in _medians(picked, "p99").items():
        assert offered is not None  # noqa: S101 - filtered above
        if offered not in best or value < best[offered].value:
            best[offered] = _Best(case, value)
    return best


def references(rows: Sequence[Measurement]) -> References:
    """The limit and peer references found among `rows`."""
    return References(
        limit_throughput=_best_throughput(rows, "limit"),
        peer_throughput=_best_throughput(rows, "peer"),
        limit_p99=_best_p99(rows, "limit"),
        peer_p99=_best_p99(rows, "peer"),
    )


def _div(value: float | None, ref: _Best | None, case: CaseKey) -> float | None:
    if value is None or ref is None or ref.case == case or ref.value <= 0:
        return None
    return value / ref.value


def ratios(row: Measurement, refs: References) -> Ratios:
    """This row's ratios to the references (None where they do not apply)."""
    if row.role == "info":
        return Ratios()
    case = (row.scenario, row.case)
    p99 = row.latency.p99 if row.latency and row.mode == "open" else None
    offered = row.offered if row.offered is not None else -1.0
    throughput = row.throughput if row.mode == "saturation" else None
    vs_peer = row.role != "limit"
    return Ratios(
        thr_vs_limit=_div(throughput, refs.limit_throughput, case),
        p99_vs_limit=_div(p99, refs.limit_p99.get(offered), case),
        thr_vs_peer=_div(throughput, refs.peer_throughput, case) if vs_peer else None,
        p99_vs_peer=_div(p99, refs.peer_p99.get(offered), case) if vs_peer else None,
    )
