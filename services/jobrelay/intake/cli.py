"""`jobrelay intake`: run the intake service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The intake service: POST /v1/jobs answers 202 once the job is on Kafka.")


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Interface (default JOBRELAY_INTAKE_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="TCP port (default JOBRELAY_INTAKE_PORT or 8000; 0: any free)."),
) -> None:
    """Run the intake until SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from jobrelay.intake.main import run
    from jobrelay.intake.settings import IntakeSettings

    overrides = {name: value for name, value in {"host": host, "port": port}.items() if value is not None}
    settings = IntakeSettings(**overrides)  # type: ignore[arg-type]
    if settings.workers > 1:
        from jobrelay.intake.workers import serve_workers

        raise typer.Exit(serve_workers(settings))
    from jobrelay.http import run_service

    run_service(run(settings))
