"""The bench's no-op job type, loaded by the processor via `JOBRELAY_PROCESSOR_HANDLER_MODULES=bench.noop`."""

from __future__ import annotations

from typing import Any

from jobrelay.processor.handlers import Job, Progress, handler

__all__ = ["noop"]


@handler("bench.noop")  # bench.jobrelay_kit.NOOP_TYPE; not imported, to keep the processor's import light
async def noop(job: Job, progress: Progress) -> Any:
    """Do nothing and succeed with no result: the job whose cost is jobrelay's alone."""
    return None
