"""`jobrelay notifier`: run the notifier service (and its operational sub-commands)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="The notifier service.", no_args_is_help=True)
