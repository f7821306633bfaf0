"""The `wait` preference of a `Prefer` header (RFC 7240), and the document a finished job answers with."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from jobrelay.jobs.document import render
from jobrelay.jobs.events import JobCompleted, JobRequested, utcnow
from jobrelay.jobs.state import fold

__all__ = ["finished_document", "wait_preference"]

_HUGE = 10**9  # more seconds than any cap: longer numbers are not worth converting


def wait_preference(prefer: str) -> int | None:
    """Seconds of the first `wait` preference in `prefer`; None when there is none or it is malformed.

    RFC 7240: `Prefer: respond-async, wait=10`; a preference named twice counts once (the first),
    and a server ignores what it cannot parse.
    """
    for preference in prefer.split(","):
        name, equals, value = preference.partition(";")[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        seconds = value.strip()
        if len(seconds) >= 2 and seconds[0] == seconds[-1] == '"':
            seconds = seconds[1:-1]
        if not equals or not (seconds.isascii() and seconds.isdigit()):
            return None
        return _HUGE if len(seconds) > 9 else int(seconds)
    return None


def finished_document(request: JobRequested, completed: JobCompleted, base: str) -> dict[str, Any]:
    """The status document of a job that ended, from its request and its outcome (what the intake has).

    It is the status view's document for those two events; what only job-progress or job-dlq
    carry (the last progress message, a failed job's percent, incidents) and the view's own
    `retain_until` are absent. A replay's request was rebuilt from the retried HTTP request, so the
    original's time and expiry come from the outcome, which carries them.
    """
    if completed.requested_at is not None:
        request = replace(request, occurred_at=completed.requested_at, expires_at=completed.expires_at)
    state = fold([request, completed], requested_topic="job-requested")
    if state is None:  # pragma: no cover - two events always fold to a state
        raise AssertionError("no state")
    return render(state, now=utcnow(), stall_after=timedelta(0), base=base)
