"""`jobrelay watch ID` and `jobrelay watch --all`: follow jobs live, riding out restarts of the status view.

One job: a progress bar fed by the SDK's `events()` (Server-Sent Events), which reconnects with
Last-Event-ID after a dropped connection and says so ("reconnecting…"). Every job of the tenant:
one live table with a progress bar per job, fed by the tenant's stream (`GET /v1/events`), or,
from a status view without it, by polling `GET /v1/jobs`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Table

from jobrelay.cli.jobs import STATUS, _client, _fail, console
from jobrelay.sdk import JobClient, JobNotFound, JobRelayError, JobView
from jobrelay.sdk.errors import describe
from jobrelay.sdk.status import raise_for_problem

__all__ = ["Board", "watch"]


def watch(
    job_id: str | None = typer.Argument(None, help="The job to follow (or --all)."),
    every: bool = typer.Option(False, "--all", "-a", help="Follow every job of the tenant in one table."),
    limit: int = typer.Option(30, help="With --all: how many of the most recent jobs the table shows."),
    timeout: float = typer.Option(300.0, help="Give up when the status view stays unreachable this long."),
    status_url: str = STATUS,
) -> None:
    """Follow a job live until it ends (exit 1 unless it succeeded), or every job of the tenant (--all)."""
    if every == (job_id is not None):
        console.print("[red]name one job id, or --all[/red]")
        raise typer.Exit(2)
    with _client(status_url, status_url) as client:
        try:
            if job_id is None:
                _watch_all(client, limit, timeout)
                return
            final = _watch_one(client, job_id, timeout)
        except (JobRelayError, httpx.HTTPError) as exc:
            raise _fail(exc) from exc
    console.print_json(json.dumps(final.model_dump(mode="json", exclude_none=True, exclude={"sequence"})))
    if final.status != "succeeded":
        raise typer.Exit(1)


def _reconnecting(exc: BaseException) -> None:
    console.print(f"[yellow]reconnecting… ({describe(exc)})[/yellow]")


def _watch_one(client: JobClient, job_id: str, timeout: float) -> JobView:
    final: JobView | None = None
    with _display(job_id) as show:
        for view in client.events([job_id], give_up_after=timeout, on_drop=_reconnecting):
            final = view
            show(view)
    if final is None:  # the stream had ended before (204): show where the job is
        final = client.get(job_id)
    return final


@contextmanager
def _display(job_id: str) -> Iterator[Callable[[JobView], None]]:
    """A progress bar on a terminal; elsewhere (a pipe, CI logs) one line per change."""
    label = job_id[:8]
    if not console.is_terminal:
        yield lambda view: console.print(f"{label} {view.status} {_percent(view):.0f}% {view.message or ''}".rstrip())
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(label, total=100)

        def show(view: JobView) -> None:
            description = f"{label} {view.status} {view.message or ''}".strip()
            bar.update(task, completed=_percent(view), description=description)

        yield show


def _percent(view: JobView | dict[str, Any]) -> float:
    status = view.status if isinstance(view, JobView) else view.get("status")
    progress = view.progress if isinstance(view, JobView) else view.get("progress")
    return 100.0 if status == "succeeded" else float(progress or 0)


class Board:
    """The `--all` table: the most recent jobs, newest first, each with a progress bar."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.jobs: dict[str, dict[str, Any]] = {}

    def update(self, doc: dict[str, Any]) -> None:
        """Take a job's latest status document."""
        self.jobs[doc["id"]] = doc

    def render(self, note: str = "") -> Table:
        """The table as it stands."""
        table = Table(title="jobs (Ctrl+C to stop)", caption=note or None, expand=True)
        for column in ("id", "type", "status", "progress", "message", "updated"):
            table.add_column(column, ratio=2 if column == "progress" else None, no_wrap=True)
        for doc in self._recent():
            bar = ProgressBar(total=100, completed=_percent(doc), width=None)
            table.add_row(
                doc["id"][:8],
                doc.get("type", ""),
                doc.get("status", ""),
                bar,
                doc.get("message") or "",
                _clock(doc.get("updated_at")),
            )
        return table

    def _recent(self) -> list[dict[str, Any]]:
        ordered = sorted(self.jobs.values(), key=lambda d: d.get("created_at") or "", reverse=True)
        return ordered[: self.limit]


def _clock(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%H:%M:%S") if value else ""
    except ValueError:
        return value or ""


def _watch_all(client: JobClient, limit: int, timeout: float) -> None:
    board = Board(limit)
    for doc in _recent_jobs(client, limit, timeout):
        board.update(doc)
    note: list[str] = []

    def dropped(exc: BaseException) -> None:
        note[:] = [f"reconnecting… ({describe(exc)})"]

    with Live(board.render(), console=console, refresh_per_second=4) as live:
        try:
            console.print(f"following every job of the tenant at {client.config.status_base_url} (Ctrl+C to stop)")
            for doc in _tenant_changes(client, limit, timeout, dropped):
                board.update(doc)
                live.update(board.render(note.pop() if note else ""))
        except KeyboardInterrupt:
            return


def _tenant_changes(
    client: JobClient, limit: int, timeout: float, dropped: Callable[[BaseException], None]
) -> Iterator[dict[str, Any]]:
    """Every change of the tenant's jobs: from its stream, else (an older status view) by polling."""
    try:
        for view in client.events(None, give_up_after=timeout, on_drop=dropped):
            yield view.model_dump(mode="json")
    except JobNotFound:  # no `GET /v1/events` on this status view
        while True:
            yield from _recent_jobs(client, limit, timeout)
            time.sleep(1.0)


def _recent_jobs(client: JobClient, limit: int, timeout: float) -> list[dict[str, Any]]:
    """The most recent jobs (`GET /v1/jobs`), retried as the SDK retries."""
    url = f"{client.config.status_base_url.rstrip('/')}/v1/jobs"

    def fetch() -> list[dict[str, Any]]:
        response = client.http.get(url, params={"limit": limit}, headers=client.config.headers())
        raise_for_problem(response)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    policy = client.retry_policy
    return policy.retrying(policy.clock() + timeout)(fetch)
