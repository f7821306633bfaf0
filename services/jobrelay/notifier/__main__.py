"""`python -m jobrelay.notifier` runs the notifier service."""

from jobrelay.notifier.main import run

__all__: list[str] = []

run()
