"""`jobrelay projector`: run the projector service; `jobrelay projector rebuild` rebuilds its view."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from jobrelay.config.settings import KafkaSettings, TopicSettings

__all__ = ["app"]

app = typer.Typer(help="The projector service: the queryable job status view.")
console = Console()


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run the projector (query API on JOBRELAY_PROJECTOR_HOST:PORT, default 127.0.0.1:8001)."""
    if ctx.invoked_subcommand is not None:
        return
    from jobrelay.http import run_service
    from jobrelay.projector.main import main

    run_service(main())


@app.command()
def rebuild(
    swap: bool = typer.Option(True, help="Swap the rebuilt view in (--no-swap: build it and leave it beside)."),
) -> None:
    """Replay the topics from the beginning into a fresh view and swap it in atomically."""
    from jobrelay.config.settings import ObservabilitySettings
    from jobrelay.observability import configure_logging
    from jobrelay.projector.rebuild import rebuild as run_rebuild
    from jobrelay.projector.settings import ProjectorSettings

    observability = ObservabilitySettings()
    configure_logging("projector-rebuild", observability.log_level, observability.log_format)
    settings = ProjectorSettings()
    if settings.store != "sqlite":
        raise typer.BadParameter(
            "only the sqlite store can be rebuilt for now (the memory store rebuilds on every start)"
        )
    report = asyncio.run(run_rebuild(settings, KafkaSettings(), TopicSettings(), swap=swap))
    console.print(
        f"rebuilt {report.generation.name}: {report.records} records in {report.seconds:.1f}s "
        f"({report.rate:,.0f} records/s), {report.purged} purged past retention"
        + (", swapped in" if swap else ", not swapped in")
    )
