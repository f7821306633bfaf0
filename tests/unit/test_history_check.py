"""The history checker's judgement (pure): each broken promise is counted, a clean history is ok."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobrelay.checker.history import Evidence, Told, check

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_clean_history_keeps_every_promise() -> None:
    evidence = Evidence(
        told=[Told("a", 202, callback=True), Told("b", 202), Told("c", 503)],
        requested={"a": None, "b": None},
        outcomes={"a": ["SUCCEEDED"], "b": ["FAILED"]},
        view={"a": ("SUCCEEDED", "{1}"), "b": ("FAILED", "{2}")},
        rebuilt={"a": ("SUCCEEDED", "{1}"), "b": ("FAILED", "{2}")},
        deliveries={"a": {"msg_1"}},
    )
    report = check(evidence, NOW)
    assert report.ok and (report.accepted, report.refused, report.refused_but_ran) == (2, 1, 0)


def test_each_broken_promise_is_counted_with_examples() -> None:
    evidence = Evidence(
        told=[Told("lost", 202), Told("dup", 202), Told("open", 202), Told("hook", 202, callback=True), Told("r", 503)],
        requested={"dup": None, "open": NOW - timedelta(seconds=1), "hook": None, "r": None},
        outcomes={"dup": ["SUCCEEDED", "SUCCEEDED"], "ghost": ["FAILED"], "hook": ["SUCCEEDED"]},
        view={"dup": ("RUNNING", "x"), "open": ("RUNNING", "y"), "hook": ("SUCCEEDED", "z")},
        rebuilt={"dup": ("SUCCEEDED", "x2"), "open": ("RUNNING", "y"), "hook": ("SUCCEEDED", "z")},
        deliveries={},
    )
    report = check(evidence, NOW)
    assert not report.ok
    assert (report.lost, report.without_outcome, report.duplicate_outcomes, report.phantom) == (1, 1, 1, 1)
    assert (report.view_wrong, report.view_vs_rebuild, report.callbacks_undelivered, report.overdue) == (2, 1, 1, 1)
    assert report.refused_but_ran == 1, "a 503'd request that ran anyway is reported"
    assert report.examples["lost"] == ["lost"] and report.examples["phantom"] == ["ghost"]
