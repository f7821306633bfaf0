"""The `jobrelay` command: development helpers and operations, one sub-command per concern."""

from __future__ import annotations

import typer
from rich.console import Console

from jobrelay.cli.bench import bench
from jobrelay.cli.completions import completions_app
from jobrelay.cli.dev import dev_app
from jobrelay.cli.dlq import dlq_app
from jobrelay.cli.jobs import register as register_job_commands
from jobrelay.cli.keys import keys_app
from jobrelay.cli.settingsdoc import settings
from jobrelay.cli.topics import topics_app
from jobrelay.cli.watch import watch
from jobrelay.intake.cli import app as intake_app
from jobrelay.notifier.cli import app as notifier_app
from jobrelay.processor.cli import app as processor_app
from jobrelay.projector.cli import app as projector_app

__all__ = ["app"]

app = typer.Typer(name="jobrelay", help="Asynchronous Request-Reply on Apache Kafka.", no_args_is_help=True)
register_job_commands(app)
app.command()(watch)
app.command()(settings)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench)
app.add_typer(dev_app, name="dev")
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(completions_app, name="completions")
app.add_typer(keys_app, name="keys")
app.add_typer(intake_app, name="intake")
app.add_typer(processor_app, name="processor")
app.add_typer(projector_app, name="projector")
app.add_typer(notifier_app, name="notifier")
console = Console()


@app.command()
def version() -> None:
    """Print jobrelay's version."""
    from importlib.metadata import version as dist_version

    console.print(f"jobrelay {dist_version('jobrelay')}")


if __name__ == "__main__":
    app()
