"""`jobrelay notifier`: run the notifier service, and look at or repair its delivery state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from jobrelay.notifier.deadletters import redacted
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.notifier.store import open_store

__all__ = ["app"]

app = typer.Typer(help="The notifier service: signed, retried, SSRF-safe webhooks for completed jobs.")
console = Console()


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Run the notifier (settings from JOBRELAY_NOTIFIER_*, JOBRELAY_KAFKA_*, JOBRELAY_TOPICS_*)."""
    if ctx.invoked_subcommand is None:
        from jobrelay.notifier.main import run

        run()


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


async def _deliveries(job_id: str) -> Table:
    store = await open_store(NotifierSettings())
    try:
        rows = await store.deliveries_of(job_id)
    finally:
        await store.close()
    table = Table("webhook-id", "url", "state", "attempts", "last status", "next attempt", "last error")
    for d in rows:
        next_at = _when(d.next_attempt_at) if d.state == "pending" else ""
        table.add_row(
            d.webhook_id,
            redacted(d.url),
            d.state.value,
            str(d.attempts),
            str(d.last_status or ""),
            next_at,
            d.last_error or "",
        )
    return table


@app.command()
def deliveries(job_id: str = typer.Argument(help="The job whose webhook deliveries to show.")) -> None:
    """Show a job's webhook deliveries: where, in which state, after how many attempts."""
    console.print(asyncio.run(_deliveries(job_id)))


async def _enable(url: str) -> bool:
    store = await open_store(NotifierSettings())
    try:
        return await store.enable_url(url)
    finally:
        await store.close()


@app.command("enable-url")
def enable_url(url: str = typer.Argument(help="The exact URL that answered 410 Gone.")) -> None:
    """Call a URL again that answered 410 Gone (only later deliveries; disabled ones stay in job-dlq)."""
    if not asyncio.run(_enable(url)):
        console.print(f"{url} was not disabled")
        raise typer.Exit(1)
    console.print(f"{url} enabled again")
