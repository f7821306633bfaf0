"""A user's handler module, loaded by dotted path like any outside jobrelay."""

from __future__ import annotations

from jobrelay.processor.handlers import Job, Progress, handler

__all__ = ["shout"]


@handler("test.shout")
async def shout(job: Job, progress: Progress) -> str:
    """Upper-case the payload's text."""
    await progress(message="shouting")
    return str(job.payload["text"]).upper()
