"""The bench's job types: a no-op and one that runs until cancelled (`HANDLER_MODULES=bench.noop`)."""

from __future__ import annotations

import asyncio
from typing import Any

from jobrelay.processor.handlers import Job, Progress, handler

__all__ = ["hold", "noop"]


@handler("bench.noop")  # bench.jobrelay_kit.NOOP_TYPE; not imported, to keep the processor's import light
async def noop(job: Job, progress: Progress) -> Any:
    """Do nothing and succeed with no result: the job whose cost is jobrelay's alone."""
    return None


@handler("bench.hold")
async def hold(job: Job, progress: Progress) -> Any:
    """Run until cancelled (at most `seconds`, default 60): the job the cancel scenario stops."""
    payload = job.payload if isinstance(job.payload, dict) else {}
    await asyncio.sleep(float(payload.get("seconds", 60)))
    return None
