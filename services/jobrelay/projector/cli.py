"""`jobrelay projector`: run the projector service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The projector service.", no_args_is_help=True)
