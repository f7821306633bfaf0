"""Built-in demo handlers: `demo.echo`, `demo.sleep` and `demo.fail`.

They exist to try jobrelay end to end and to test the processor; payload fields are documented on
each. They are not registered unless named in `JOBRELAY_PROCESSOR_HANDLER_MODULES` (the dev stack
of `make run` and the tests do). `demo.sleep` can append "<job id> <attempt>" to a file named in
its payload (`record`), so a test can see which attempts ran, even across a processor crash — only
inside the folder `JOBRELAY_DEMO_RECORD_DIR` names, and not at all without it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jobrelay.processor.handlers import Job, PermanentError, Progress, RetryableError, handler

__all__ = ["echo", "fail", "sleep"]


@handler("demo.echo")
async def echo(job: Job, progress: Progress) -> Any:
    """Return the payload unchanged (a no-op job)."""
    return job.payload


@handler("demo.sleep")
async def sleep(job: Job, progress: Progress) -> dict[str, Any]:
    """Sleep `seconds` (default 1) in `steps` (default 4), reporting progress after each step.

    With `record` (a file path) it first appends "<job id> <attempt>" to that file.
    """
    payload = job.payload if isinstance(job.payload, dict) else {}
    seconds, steps = float(payload.get("seconds", 1.0)), max(1, int(payload.get("steps", 4)))
    if "record" in payload:
        _record(_recording(str(payload["record"])), f"{job.id} {job.attempt}\n")
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await progress(100 * step / steps, f"step {step} of {steps}")
    return {"slept": seconds, "attempt": job.attempt}


@handler("demo.fail")
async def fail(job: Job, progress: Progress) -> dict[str, Any]:
    """Fail while `attempt <= fail_attempts` (default: always), then succeed.

    `retryable` (default true) picks RetryableError or PermanentError; `delay_s` overrides the
    backoff; `message` is the error message.
    """
    payload = job.payload if isinstance(job.payload, dict) else {}
    fail_attempts = int(payload.get("fail_attempts", job.max_attempts))
    if job.attempt > fail_attempts:
        return {"succeeded_on_attempt": job.attempt}
    message = str(payload.get("message", f"demo failure on attempt {job.attempt}"))
    if payload.get("retryable", True):
        delay = payload.get("delay_s")
        raise RetryableError(message, delay_s=None if delay is None else float(delay))
    raise PermanentError(message)


def _recording(name: str) -> Path:
    """Where `record` may write: inside JOBRELAY_DEMO_RECORD_DIR, or nowhere (a permanent failure)."""
    folder = os.environ.get("JOBRELAY_DEMO_RECORD_DIR")
    if not folder:
        raise PermanentError("`record` is off: JOBRELAY_DEMO_RECORD_DIR is not set")
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise PermanentError(f"`record` must name a file inside {root}")
    return path


def _record(path: Path, line: str) -> None:
    # One small append; O_APPEND keeps lines whole when several processes write the same file.
    with path.open("a", encoding="utf-8") as file:
        file.write(line)
