"""`python -m jobrelay.projector`: run the projector service."""

from __future__ import annotations

import asyncio

from jobrelay.projector.main import main

__all__: list[str] = []

if __name__ == "__main__":
    asyncio.run(main())
