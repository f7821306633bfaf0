"""`python -m jobrelay.notifier` runs the notifier service."""

from jobrelay.notifier.main import run

run()
