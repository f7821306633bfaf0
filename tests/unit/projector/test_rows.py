"""A row's stored state reads back as the very state that was written, whatever its values."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobrelay.jobs.events import JobCancelRequested, JobProgress, JobRequested, ProgressKind
from jobrelay.jobs.state import JobState, evolve
from jobrelay.projector.store.rows import from_json, iso, parse_iso, to_json

JOB = "6c0b3bb4-8d4b-4c37-9d8e-0d0f8f2a8d11"
T0 = datetime(2026, 11, 23, 9, 30, 15, 123000, tzinfo=UTC)


def _state(percent: float, message: str, timeout_s: float | None = 30.0) -> JobState:
    requested = JobRequested(job_id=JOB, job_type="t", payload="{}", occurred_at=T0, timeout_s=timeout_s)
    progress = JobProgress(
        job_id=JOB, job_type="t", sequence=1, kind=ProgressKind.PROGRESS, percent=percent, message=message
    )
    return evolve(evolve(None, requested, requested_topic="r"), progress, requested_topic="r")


@pytest.mark.parametrize("percent", [50.0, 0.1 + 0.2, 1e-300, math.inf, -math.inf])
@pytest.mark.parametrize("message", ["half way", "fünfzig % ✓", 'a\nb"c\\', "\ud800 lone surrogate"])
def test_the_state_round_trips(percent: float, message: str) -> None:
    state = _state(percent, message)
    assert from_json(to_json(state)) == state


def test_nan_round_trips_as_nan() -> None:
    back = from_json(to_json(_state(math.nan, "x", timeout_s=math.nan)))
    assert back.percent is not None and math.isnan(float(back.percent.value))
    assert back.request is not None and back.request.timeout_s is not None and math.isnan(back.request.timeout_s)


def test_text_written_by_json_dumps_reads_back_the_same() -> None:
    """Views stored before orjson (json.dumps text) read as they always did."""
    state = _state(42.5, "fünfzig")
    legacy = json.dumps(json.loads(to_json(state)), separators=(",", ":"))
    assert from_json(legacy) == state


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        T0.replace(microsecond=0),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        T0.astimezone(timezone(timedelta(hours=-5))),
    ],
)
def test_iso_is_strftimes_text_and_parses_back(moment: datetime) -> None:
    assert iso(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if moment.year >= 1000:  # strftime writes year 999 as "999", which no ISO parser reads (as before)
        assert parse_iso(iso(moment)) == moment


def test_the_life_cycle_fields_round_trip() -> None:
    requested = JobRequested(
        job_id=JOB, job_type="t", payload='{"n":1}', occurred_at=T0, tenant="acme", retry_of=str(uuid.UUID(int=1))
    )
    started = JobProgress(job_id=JOB, job_type="t", sequence=1_000_001, kind=ProgressKind.STARTED, occurred_at=T0)
    cancel = JobCancelRequested(job_id=JOB, occurred_at=T0 + timedelta(seconds=1), reason="no longer needed")
    state = None
    for event in (requested, started, cancel):
        state = evolve(state, event, requested_topic="r")
    assert state is not None and state.cancel is not None and state.started_at == T0
    assert from_json(to_json(state)) == state


def test_a_row_stored_before_the_life_cycle_fields_still_reads() -> None:
    old = {
        "id": JOB,
        "typed": [0, "e", "t"],
        "percent": None,
        "message": None,
        "first_at": "2026-11-23T09:30:15.123000Z",
        "last_at": "2026-11-23T09:30:15.123000Z",
        "activity_at": None,
        "request": ["t", "2026-11-23T09:30:15.123000Z", 3, None, None, None, "c"],
    }
    state = from_json(json.dumps(old))
    assert state.request is not None and state.request.client_id == "c"
    assert (state.request.payload, state.request.tenant, state.started_at, state.cancel) == (None, None, None, None)
