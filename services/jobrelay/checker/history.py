"""Judge a run's history: what clients were told against what Kafka and the view hold.

Pure: `check(evidence, now)` reads nothing itself (`gather.py` collects the evidence). The
promises, each counted in the `Report` (every one must be 0 for `ok`):
- **lost**: a job a client was told was accepted (a 202, or a publish the SDK acknowledged) has
  no JobRequested on job-requested;
- **without outcome** / **duplicate outcomes**: each accepted job has exactly one JobCompleted
  (read_committed);
- **phantom**: no JobCompleted for a job nobody submitted (no JobRequested);
- **view wrong**: the view's status of each finished job is its outcome;
- **view vs rebuild**: the view equals a full rebuild from the topics (state by state);
- **callbacks undelivered**: every finished job with a callback had at least one delivery, with a
  `webhook-id`;
- **overdue**: no job is left unfinished past its expiry.
A 503 is not "accepted": the count of 503'd requests that ran anyway is reported beside them
(the intake says in the 503 when the outcome is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Evidence", "Report", "Told", "check"]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})


@dataclass(frozen=True, slots=True)
class Told:
    """What a client was told about one request: the HTTP status (202, 503 …) and its job id."""

    job_id: str
    status: int
    callback: bool = False


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the checker compares (job ids as text; statuses upper case, as the events name them)."""

    told: list[Told]
    requested: Mapping[str, datetime | None]  # job id -> its expires_at, for every JobRequested
    outcomes: Mapping[str, list[str]]  # job id -> the status of each JobCompleted (read_committed)
    view: Mapping[str, tuple[str, str]]  # job id -> (status, state as stored)
    rebuilt: Mapping[str, tuple[str, str]] | None = None  # the same from a full rebuild; None: not checked
    deliveries: Mapping[str, set[str]] | None = None  # job id -> webhook-ids received; None: not checked


@dataclass(frozen=True, slots=True)
class Report:
    """Counts of every promise (and, for each broken one, a few job ids as examples)."""

    accepted: int
    refused: int
    refused_but_ran: int
    lost: int
    without_outcome: int
    duplicate_outcomes: int
    phantom: int
    view_wrong: int
    view_vs_rebuild: int
    callbacks_undelivered: int
    overdue: int
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every promise held."""
        broken = (self.lost, self.without_outcome, self.duplicate_outcomes, self.phantom, self.view_wrong,
                  self.view_vs_rebuild, self.callbacks_undelivered, self.overdue)  # fmt: skip
        return not any(broken)

    def rows(self) -> list[tuple[str, int, bool]]:
        """(what, count, is it a promise that must be 0) for a table."""
        return [
            ("accepted (202 / acknowledged)", self.accepted, False),
            ("refused (503 and other errors)", self.refused, False),
            ("refused but ran anyway", self.refused_but_ran, False),
            ("lost", self.lost, True),
            ("accepted without an outcome", self.without_outcome, True),
            ("duplicate outcomes", self.duplicate_outcomes, True),
            ("outcomes of jobs nobody submitted", self.phantom, True),
            ("view status != outcome", self.view_wrong, True),
            ("view != rebuild", self.view_vs_rebuild, True),
            ("callbacks never delivered", self.callbacks_undelivered, True),
            ("unfinished past their expiry", self.overdue, True),
        ]


def check(evidence: Evidence, now: datetime) -> Report:
    """The report of `evidence` as of `now`."""
    accepted = {t.job_id: t for t in evidence.told if t.status in (200, 201, 202)}
    refused = {t.job_id for t in evidence.told if t.status >= 400} - set(accepted)
    outcomes = evidence.outcomes
    found: dict[str, list[str]] = {
        "lost": sorted(j for j in accepted if j not in evidence.requested),
        "without_outcome": sorted(j for j in accepted if j in evidence.requested and not outcomes.get(j)),
        "duplicate_outcomes": sorted(j for j, statuses in outcomes.items() if len(statuses) > 1),
        "phantom": sorted(j for j in outcomes if j not in evidence.requested),
        "view_wrong": sorted(j for j, s in outcomes.items() if s and evidence.view.get(j, ("", ""))[0] != s[-1]),
        "view_vs_rebuild": _differences(evidence.view, evidence.rebuilt),
        "callbacks_undelivered": _undelivered(accepted, outcomes, evidence.deliveries),
        "overdue": _overdue(evidence, now),
    }
    return Report(
        accepted=len(accepted),
        refused=len(refused),
        refused_but_ran=sum(1 for j in refused if j in evidence.requested),
        **{name: len(ids) for name, ids in found.items()},
        examples={name: ids[:5] for name, ids in found.items() if ids},
    )


def _differences(view: Mapping[str, tuple[str, str]], rebuilt: Mapping[str, tuple[str, str]] | None) -> list[str]:
    if rebuilt is None:
        return []
    return sorted(j for j in set(view) | set(rebuilt) if view.get(j) != rebuilt.get(j))


def _undelivered(
    accepted: Mapping[str, Told], outcomes: Mapping[str, list[str]], deliveries: Mapping[str, set[str]] | None
) -> list[str]:
    if deliveries is None:
        return []
    return sorted(j for j, told in accepted.items() if told.callback and outcomes.get(j) and not deliveries.get(j))


def _overdue(evidence: Evidence, now: datetime) -> list[str]:
    """Jobs past their expiry with neither an outcome nor a terminal status in the view."""

    def over(job_id: str) -> bool:
        return not evidence.outcomes.get(job_id) and evidence.view.get(job_id, ("", ""))[0] not in TERMINAL

    return sorted(j for j, expires in evidence.requested.items() if expires is not None and expires < now and over(j))
