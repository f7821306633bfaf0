"""A stored job: its folded state as JSON, plus the view's bookkeeping (change counter, events applied)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from jobrelay.jobs.document import iso
from jobrelay.jobs.events import DeadLetterReason, JobError
from jobrelay.jobs.state import CancelRequest, JobState, JobStatus, Note, Outcome, Request, Step, Valued

__all__ = ["JobRow", "from_json", "iso", "parse_iso", "to_json"]


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job in the view.

    `version` counts the view's changes of this job (the SSE event id and part of the ETag);
    `applied` counts every record applied to it, duplicates included, so a replay that applied a
    record twice or skipped one shows. `change` numbers the row's latest version among every
    job's changes (`ChangeClock`; the many-job streams' event id); 0 until the row is stored.
    """

    state: JobState
    version: int
    applied: int
    change: int = 0

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.state.job_id


def parse_iso(text: str) -> datetime:
    """The inverse of `iso` (accepts any ISO 8601 instant)."""
    return datetime.fromisoformat(text)


def _dt(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _pdt(value: Any) -> datetime | None:
    return parse_iso(value) if value is not None else None


def _valued(value: Valued | None) -> list[Any] | None:
    return [value.sequence, value.event_id, value.value] if value is not None else None


def _pvalued(raw: Any) -> Valued | None:
    return Valued(sequence=raw[0], event_id=raw[1], value=raw[2]) if raw is not None else None


def to_json(state: JobState) -> str:
    """The state as compact JSON text."""
    doc: dict[str, Any] = {
        "id": state.job_id,
        "typed": _valued(state.typed),
        "percent": _valued(state.percent),
        "message": _valued(state.message),
        "first_at": _dt(state.first_at),
        "last_at": _dt(state.last_at),
        "activity_at": _dt(state.activity_at),
        "started_at": _dt(state.started_at),
    }
    if (r := state.request) is not None:
        doc["request"] = [
            r.job_type,
            iso(r.created_at),
            r.max_attempts,
            r.timeout_s,
            _dt(r.expires_at),
            r.callback_url,
            r.client_id,
            r.payload,
            r.tenant,
            r.retry_of,
        ]
    if (c := state.cancel) is not None:
        doc["cancel"] = [iso(c.at), c.event_id, c.reason, c.requested_by]
    if (s := state.step) is not None:
        doc["step"] = [s.sequence, s.event_id, s.status.value, s.attempt, _dt(s.retry_at)]
    if (o := state.outcome) is not None:
        error = [o.error.code, o.error.message, o.error.retryable] if o.error is not None else None
        doc["outcome"] = [o.completed, o.sequence, o.event_id, o.status.value, o.attempt, iso(o.at), o.result, error]
    if state.notes:
        doc["notes"] = [
            [n.event_id, n.stage, n.reason.value, n.source_topic, iso(n.at), n.error_message, n.attempts, n.last_status]
            for n in state.notes
        ]
    return _dumps(doc, state)


def _dumps(doc: dict[str, Any], state: JobState) -> str:
    """Compact JSON by orjson; by json where orjson differs (NaN, infinity: null) or refuses (huge ints)."""
    floats = (
        state.percent.value if state.percent is not None else 0.0,
        (state.request and state.request.timeout_s) or 0.0,
    )
    if all(not isinstance(f, float) or math.isfinite(f) for f in floats):
        try:
            return orjson.dumps(doc).decode()
        except TypeError:
            pass
    return json.dumps(doc, separators=(",", ":"))


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN or infinity, which only json writes and reads
        return json.loads(text)


def from_json(text: str) -> JobState:
    """The state `to_json` wrote."""
    doc = _loads(text)
    return JobState(
        job_id=doc["id"],
        typed=_pvalued(doc["typed"]),
        request=_request(doc.get("request")),
        step=_step(doc.get("step")),
        outcome=_outcome(doc.get("outcome")),
        percent=_pvalued(doc["percent"]),
        message=_pvalued(doc["message"]),
        notes=tuple(_note(n) for n in doc.get("notes", ())),
        first_at=_pdt(doc["first_at"]),
        last_at=_pdt(doc["last_at"]),
        activity_at=_pdt(doc["activity_at"]),
        started_at=_pdt(doc.get("started_at")),
        cancel=_cancel(doc.get("cancel")),
    )


def _cancel(raw: list[Any] | None) -> CancelRequest | None:
    if raw is None:
        return None
    at, event_id, reason, requested_by = raw
    return CancelRequest(at=parse_iso(at), event_id=event_id, reason=reason, requested_by=requested_by)


def _request(raw: list[Any] | None) -> Request | None:
    if raw is None:
        return None
    # Rows written before payload, tenant and retry_of were kept have the first seven fields only.
    job_type, created, max_attempts, timeout_s, expires, callback, client = raw[:7]
    payload, tenant, retry_of = (*raw[7:], None, None, None)[:3]
    return Request(
        job_type=job_type,
        created_at=parse_iso(created),
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        expires_at=_pdt(expires),
        callback_url=callback,
        client_id=client,
        payload=payload,
        tenant=tenant,
        retry_of=retry_of,
    )


def _step(raw: list[Any] | None) -> Step | None:
    if raw is None:
        return None
    sequence, event_id, status, attempt, retry_at = raw
    return Step(
        sequence=sequence, event_id=event_id, status=JobStatus(status), attempt=attempt, retry_at=_pdt(retry_at)
    )


def _outcome(raw: list[Any] | None) -> Outcome | None:
    if raw is None:
        return None
    completed, sequence, event_id, status, attempt, at, result, error = raw
    return Outcome(
        completed=completed,
        sequence=sequence,
        event_id=event_id,
        status=JobStatus(status),
        attempt=attempt,
        at=parse_iso(at),
        result=result,
        error=JobError(error[0], error[1], error[2]) if error is not None else None,
    )


def _note(raw: list[Any]) -> Note:
    event_id, stage, reason, source_topic, at, error_message, attempts, last_status = raw
    return Note(
        event_id=event_id,
        stage=stage,
        reason=DeadLetterReason(reason),
        source_topic=source_topic,
        at=parse_iso(at),
        error_message=error_message,
        attempts=attempts,
        last_status=last_status,
    )
