"""A user's handler module, loaded by dotted path like any outside jobrelay."""

from __future__ import annotations

import asyncio
import contextlib

from jobrelay.processor.handlers import Job, Progress, handler

__all__ = ["shout", "stubborn"]


@handler("test.shout")
async def shout(job: Job, progress: Progress) -> str:
    """Upper-case the payload's text."""
    await progress(message="shouting")
    return str(job.payload["text"]).upper()


@handler("test.stubborn")
async def stubborn(job: Job, progress: Progress) -> str:
    """Sleep `seconds`, swallowing cancellation (a handler that will not stop when asked)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + float(job.payload["seconds"])
    while loop.time() < until:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(until - loop.time())
    return "done anyway"
