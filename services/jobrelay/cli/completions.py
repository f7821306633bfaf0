"""`jobrelay completions tail`: follow job-completed from the terminal, one line per outcome."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from jobrelay.config.settings import KafkaSettings, ObservabilitySettings, TopicSettings
from jobrelay.jobs.events import JobCompleted, TerminalStatus
from jobrelay.observability.logging import configure_logging
from jobrelay.sdk.subscriber import Delivered, Subscriber

__all__ = ["completions_app", "completion_json", "completion_line"]

completions_app = typer.Typer(help="Downstream: the outcomes on job-completed.", no_args_is_help=True)
STATUSES = ", ".join(s.value for s in TerminalStatus)


def completion_json(item: Delivered) -> dict[str, Any]:
    """One completion as a JSON object (`result` parsed back from its JSON text)."""
    event = item.event
    assert isinstance(event, JobCompleted)  # noqa: S101 - the subscriber hands over completions only
    error = event.error
    return {
        "job_id": event.job_id,
        "job_type": event.job_type,
        "status": event.status.value,
        "attempt": event.attempt,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "result": _parsed(event.result),
        "error": None if error is None else {"code": error.code, "message": error.message},
        "tenant": event.tenant,
        "partition": item.partition,
        "offset": item.offset,
    }


def completion_line(item: Delivered) -> str:
    """One completion as a line for people: time, status, type, job id, result or error."""
    data = completion_json(item)
    error = data["error"]
    outcome = f"error={error['code']}: {error['message']}" if error else f"result={json.dumps(data['result'])}"
    return f"{data['occurred_at']}  {data['status']:<9}  {data['job_type']}  {data['job_id']}  {outcome}"


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@completions_app.command("tail")
def tail(
    job_type: list[str] = typer.Option([], "--type", "-t", help="Only this job type (repeatable; fnmatch patterns)."),
    status: list[str] = typer.Option([], "--status", "-s", help=f"Only this outcome (repeatable): {STATUSES}."),
    group: str | None = typer.Option(
        None, "--group", "-g", help="Consumer group: resume where it left off and commit; none: read, commit nothing."
    ),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest retained outcome (where the group has no offset yet)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Print each job outcome as it is published, until Ctrl+C or SIGTERM.

    An undecodable record is logged (stderr, with topic, partition and offset) and skipped.
    """
    observability = ObservabilitySettings()
    configure_logging("completions-tail", observability.log_level, observability.log_format)
    try:
        subscriber = Subscriber(
            lambda item: _print(completion_json(item) if as_json else completion_line(item)),
            group_id=group,
            types=job_type,
            statuses=status,
            from_beginning=from_beginning,
            kafka=KafkaSettings(),
            topics=TopicSettings(),
        )
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; expected one of {STATUSES}", param_hint="--status") from exc
    subscriber.run()


def _print(value: str | dict[str, Any]) -> None:
    # flushed per line: a pipe or a file sees each outcome at once, and nothing handled is lost to a buffer
    sys.stdout.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
    sys.stdout.flush()
