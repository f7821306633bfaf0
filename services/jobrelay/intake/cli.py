"""`jobrelay intake`: run the intake service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The intake service.", no_args_is_help=True)
