"""`jobrelay submit|status|jobs|cancel|retry`: use a running jobrelay from the terminal (`watch`: cli/watch.py)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from jobrelay.dev.localkafka import project_root
from jobrelay.sdk import JobClient, JobRelayError, JobView, ProblemError

__all__ = ["register"]

console = Console()
INTAKE = typer.Option("http://127.0.0.1:8000", "--intake-url", envvar="JOBRELAY_INTAKE_URL", help="The intake.")
STATUS = typer.Option("http://127.0.0.1:8001", "--status-url", envvar="JOBRELAY_STATUS_URL", help="The status view.")


def _api_key() -> str | None:
    """JOBRELAY_API_KEY, else the key `make run` made for the local stack (`.cache/stack/api-key`)."""
    key = os.environ.get("JOBRELAY_API_KEY")
    if key:
        return key
    local = project_root() / ".cache" / "stack" / "api-key"
    return local.read_text().strip() if local.is_file() else None


def _client(intake: str, status: str) -> JobClient:
    return JobClient(intake, status_base_url=status, api_key=_api_key())


def _auth() -> dict[str, str]:
    key = _api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _show(view: JobView) -> None:
    console.print_json(json.dumps(view.model_dump(mode="json", exclude_none=True)))


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, ProblemError):
        console.print(f"[red]{exc}[/red]")
        for field in getattr(exc, "fields", ()) or ():
            console.print(f"  [red]{field}[/red]")
    else:
        console.print(f"[red]{exc}[/red]")
    return typer.Exit(1)


def submit(
    job_type: str = typer.Argument(..., help="Dotted job type, e.g. demo.echo."),
    payload: str = typer.Option("{}", "--payload", "-p", help="The job's input, as JSON."),
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Wait for the outcome (Prefer: wait, then polling) and print it."
    ),
    timeout: float = typer.Option(300.0, help="Seconds --wait waits."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", help="Makes retries safe."),
    callback_url: str | None = typer.Option(None, "--callback-url", help="Webhook for the outcome."),
    intake_url: str = INTAKE,
    status_url: str = STATUS,
) -> None:
    """Submit a job; print its id (and, with --wait, its outcome). Exit 1 when it did not succeed."""
    try:
        body: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        console.print(f"[red]--payload is not JSON: {exc}[/red]")
        raise typer.Exit(2) from exc
    with _client(intake_url, status_url) as client:
        try:
            started = time.monotonic()
            # --wait asks the intake to answer with the outcome (Prefer: wait); a 202 is then polled.
            sync = min(timeout, client.config.max_wait) if wait else None
            answer = client.submit(
                job_type, body, idempotency_key=idempotency_key, callback_url=callback_url, wait=sync
            )
            where = answer.links.get("status") or answer.links.get("self", "")
            console.print(f"accepted [bold]{answer.id}[/bold]  {where}")
            if wait:
                left = timeout - (time.monotonic() - started)
                view = answer if isinstance(answer, JobView) else client.wait(answer, timeout=max(left, 0.0))
                _show(view)
                if view.status != "succeeded":
                    raise typer.Exit(1)
        except (JobRelayError, httpx.HTTPError) as exc:
            raise _fail(exc) from exc


def status(job_id: str = typer.Argument(...), intake_url: str = INTAKE, status_url: str = STATUS) -> None:
    """Print a job's current status."""
    with _client(intake_url, status_url) as client:
        try:
            _show(client.get(job_id))
        except (JobRelayError, httpx.HTTPError) as exc:
            raise _fail(exc) from exc


def cancel(job_id: str = typer.Argument(...), intake_url: str = INTAKE, status_url: str = STATUS) -> None:
    """Cancel a job; print its status (with cancel_requested_at). Exit 1 when it is over already (409)."""
    with _client(intake_url, status_url) as client:
        try:
            view = client.cancel(job_id)
        except (JobRelayError, httpx.HTTPError) as exc:
            raise _fail(exc) from exc
    console.print(f"cancel requested for [bold]{view.id}[/bold] (status now {view.status})")
    _show(view)


def retry(job_id: str = typer.Argument(...), intake_url: str = INTAKE, status_url: str = STATUS) -> None:
    """Re-run a failed, cancelled or expired job as a new job; print the new job's id."""
    with _client(intake_url, status_url) as client:
        try:
            accepted = client.retry(job_id)
        except (JobRelayError, httpx.HTTPError) as exc:
            raise _fail(exc) from exc
    console.print(f"accepted [bold]{accepted.id}[/bold] (re-runs {job_id})  {accepted.links.get('self', '')}")


def jobs(
    status_filter: list[str] = typer.Option(None, "--status", "-s", help="Only these statuses (repeatable)."),
    job_type: list[str] = typer.Option(None, "--type", "-t", help="Only these types (repeatable)."),
    limit: int = typer.Option(20, help="How many."),
    status_url: str = STATUS,
) -> None:
    """List recent jobs, newest first."""
    params: list[tuple[str, str | int | float | bool | None]] = [("limit", limit)]
    params += [("status", s) for s in status_filter or []] + [("type", t) for t in job_type or []]
    try:
        response = httpx.get(f"{status_url}/v1/jobs", params=params, headers=_auth(), timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise _fail(exc) from exc
    table = Table(title="jobs")
    for column in ("id", "type", "status", "progress", "attempts", "created", "updated"):
        table.add_column(column)
    for item in response.json()["items"]:
        progress = "" if item.get("progress") is None else f"{item['progress']:.0f}%"
        table.add_row(
            item["id"],
            item["type"],
            item["status"],
            progress,
            str(item.get("attempts", "")),
            item.get("created_at") or "",
            item.get("updated_at") or "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the commands to the top-level `jobrelay` app."""
    app.command()(submit)
    app.command()(status)
    app.command()(jobs)
    app.command()(cancel)
    app.command()(retry)
