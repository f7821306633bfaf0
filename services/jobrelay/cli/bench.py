"""`jobrelay bench`: run the benchmarks of a checkout (the same as `make bench`)."""

from __future__ import annotations

import subprocess
import sys

import typer

from jobrelay.dev.localkafka import project_root

__all__ = ["bench"]


def bench(
    args: list[str] = typer.Argument(None, help="Passed to the harness, e.g. --quick or --only limit peer."),
) -> None:
    """Run `python -m bench` in the checkout: one table, plus JSON and PNG under bench/results/."""
    root = project_root()
    if not (root / "bench" / "__main__.py").is_file():
        typer.echo(f"no bench/ in {root}: the benchmarks run from a source checkout", err=True)
        raise typer.Exit(2)
    command = [sys.executable, "-m", "bench", *(args or [])]  # our own interpreter and module
    raise typer.Exit(subprocess.run(command, cwd=root, check=False).returncode)  # noqa: S603
