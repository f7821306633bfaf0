"""`jobrelay notifier`: run the notifier service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The notifier service: signed, retried, SSRF-safe webhooks for completed jobs.")


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Run the notifier (settings from JOBRELAY_NOTIFIER_*, JOBRELAY_KAFKA_*, JOBRELAY_TOPICS_*)."""
    if ctx.invoked_subcommand is None:
        from jobrelay.notifier.main import run

        run()
