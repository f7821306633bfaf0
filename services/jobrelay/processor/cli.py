"""`jobrelay processor`: run the processor service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The processor service: runs jobs from job-requested, one outcome each.")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run the processor (settings from JOBRELAY_PROCESSOR_*, JOBRELAY_KAFKA_*, JOBRELAY_TOPICS_*)."""
    if ctx.invoked_subcommand is None:
        from jobrelay.processor.main import main

        main()


@app.command("handlers")
def handlers() -> None:
    """List the job types the configured handler modules register."""
    from jobrelay.processor.handlers import load_registry
    from jobrelay.processor.settings import ProcessorSettings

    settings = ProcessorSettings()
    for job_type in load_registry(settings.handler_modules).types():
        typer.echo(job_type)
