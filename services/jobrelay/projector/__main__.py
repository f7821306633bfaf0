"""`python -m jobrelay.projector`: run the projector service."""

from __future__ import annotations

from jobrelay.http import run_service
from jobrelay.projector.main import main

__all__: list[str] = []

if __name__ == "__main__":
    run_service(main())
