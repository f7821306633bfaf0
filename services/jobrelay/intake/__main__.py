"""`python -m jobrelay.intake`: the same as `jobrelay intake`."""

from jobrelay.intake.cli import app

__all__: list[str] = []

app(prog_name="jobrelay intake")
